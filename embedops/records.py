"""Small helpers shared by the modules that keep records in LanceDB tables."""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from typing import Any

from embedops.errors import UsageError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def sql_str(value: str) -> str:
    """Quote ``value`` as a SQL string literal for a LanceDB filter."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(column: str, values: list[str]) -> str:
    """A LanceDB filter ``column IN ('a', 'b', ...)``."""
    return f"{column} IN (" + ", ".join(sql_str(v) for v in values) + ")"


def actor() -> str:
    """Who is acting: $EMBEDOPS_ACTOR if set, else user@host."""
    explicit = os.environ.get("EMBEDOPS_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except Exception:  # pragma: no cover - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def loads(text: str | None) -> Any:
    return json.loads(text) if text else {}


def check_name(kind: str, name: str) -> str:
    """Validate a user-chosen name (corpus, model, alias): 1-64 of [A-Za-z0-9_-]."""
    if not _NAME_RE.match(name or ""):
        raise UsageError(
            f"invalid {kind} name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a "
            "letter or digit"
        )
    return name
