"""Strict reading of embedops' TOML files (``embedops.toml``, pipeline configs).

Every problem names the file, the line (when it can be found) and the ``section.key``, so a typo is
an error the user can fix at once instead of a setting silently ignored::

    embedops.toml:3: field 'guards.min_lfit': unknown setting; known: metric, k, ...

>>> f = TomlFile.read("embedops.toml")                  # doctest: +SKIP
>>> f.check_keys("guards", f.data.get("guards", {}), ["metric", "k"])   # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from embedops.errors import InputError, InputProblem

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class TomlFile:
    """A parsed TOML file with its text, to point at the line of a bad key."""

    path: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path | str) -> "TomlFile":
        path = Path(path)
        if not path.is_file():
            raise InputError(InputProblem(str(path), None, None, "no such file"))
        text = path.read_text("utf-8")
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str) -> "TomlFile":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(InputProblem(source, getattr(exc, "lineno", None), None, f"invalid TOML: {exc}")) from None
        return cls(source, text, data)

    def line_of(self, section: str, key: str | None = None) -> int | None:
        """Line number of ``key`` in ``[section]`` (or of the section header), best effort.

        ``section`` may be dotted (``pairs.generated``): the key is looked for under the header of
        that name, or inside an inline table assigned to the last part (``generated = { ... }``)."""
        parts = section.split(".")
        current: str | None = None
        inline_owner = parts[-1] if len(parts) > 1 else None
        parent = ".".join(parts[:-1])
        for n, line in enumerate(self.text.splitlines(), 1):
            header = _HEADER.match(line)
            if header:
                current = header.group(1).strip()
                if key is None and current == section:
                    return n
                continue
            stripped = line.split("#", 1)[0]
            if key is not None and current == section and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", stripped):
                return n
            if inline_owner and current == parent and re.match(rf"^\s*\"?{re.escape(inline_owner)}\"?\s*=", stripped):
                if key is None or re.search(rf"[{{,]\s*\"?{re.escape(key)}\"?\s*=", stripped):
                    return n
        return None

    def problem(self, section: str, key: str | None, message: str) -> InputProblem:
        name = f"{section}.{key}" if key else section
        return InputProblem(self.path, self.line_of(section, key), name, message)

    def error(self, section: str, key: str | None, message: str) -> InputError:
        return InputError(self.problem(section, key, message))

    def check_sections(self, known: Iterable[str]) -> None:
        known = list(known)
        bad = [self.problem(s, None, f"unknown section; known: {', '.join(known)}") for s in self.data if s not in known]
        if bad:
            raise InputError(bad)

    def section(self, name: str) -> dict[str, Any]:
        """The table ``name`` (dotted for nested tables); {} when absent, an error when not a table."""
        value: Any = self.data
        for part in name.split("."):
            value = value.get(part, {}) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            raise self.error(name, None, "must be a table (a [section] or { key = value, ... })")
        return value

    def check_keys(self, section: str, table: dict[str, Any], known: Iterable[str]) -> None:
        """Refuse any key of ``table`` (read from ``[section]``) that is not in ``known``."""
        known = list(known)
        bad = [self.problem(section, k, f"unknown setting; known: {', '.join(known)}") for k in table if k not in known]
        if bad:
            raise InputError(bad)


POLICY_FILE = "embedops.toml"
POLICY_SECTIONS = ("guards", "serve")


def read_policy_file(path: Path | str | None) -> TomlFile | None:
    """``embedops.toml`` (``path``, default ./embedops.toml when it exists) read, with only the
    sections ``[guards]`` and ``[serve]``; None when no path was given and there is no default file
    (the built-in defaults apply); a named file that does not exist is an InputError."""
    explicit = path is not None
    path = Path(path) if explicit else Path(POLICY_FILE)
    if not path.is_file():
        if explicit:
            raise InputError(InputProblem(str(path), None, None, "no such policy file"))
        return None
    toml = TomlFile.read(path)
    toml.check_sections(POLICY_SECTIONS)
    return toml


def read_settings(toml: TomlFile, section: str, table: dict[str, Any], checks: dict[str, Any], *,
                  ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The values of ``table`` (read from ``[section]`` of ``toml``) checked by ``checks`` (setting ->
    a check returning why a value is bad, or None): an unknown key, a wrong type or a value out of
    range is one InputError naming file, line and ``section.key`` for every problem. Keys in
    ``ignore`` belong to the caller and are left out. The one reader of the guard policy and the
    serve rollback policy."""
    ignore = list(ignore)
    toml.check_keys(section, {k: v for k, v in table.items() if k not in ignore}, [*checks, *ignore])
    values = {k: v for k, v in table.items() if k in checks}
    problems = [toml.problem(section, k, why) for k, v in values.items() if (why := checks[k](v))]
    if problems:
        raise InputError(problems)
    return values


_TYPE_NAMES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),),
    "Path": (str,), "list": (list,), "dict": (dict,),
}


def accepted_types(annotation: str) -> tuple[type, ...] | None:
    """The TOML value types a dataclass field annotated ``annotation`` (a string such as
    ``"int | None"``) accepts; None when the annotation is not one of the simple kinds."""
    out: list[type] = []
    for part in (p.strip() for p in annotation.split("|")):
        base = part.split("[", 1)[0]
        if base == "tuple":
            out += [list, tuple]
        elif base in _TYPE_NAMES:
            out += list(_TYPE_NAMES[base])
        else:
            return None
    return tuple(out)


def check_field_types(toml: TomlFile, section: str, table: dict[str, Any], annotations: dict[str, str]) -> None:
    """Refuse values of ``table`` whose type does not match ``annotations`` ({key: annotation string});
    booleans are never taken for numbers."""
    problems = []
    for key, value in table.items():
        types = accepted_types(str(annotations.get(key, "")))
        if types is None:
            continue
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(sorted({t.__name__.replace("NoneType", "unset") for t in types}))
            problems.append(toml.problem(section, key, f"must be {names} (got {type(value).__name__} {value!r})"))
    if problems:
        raise InputError(problems)


def _number(value: Any, *, integer: bool = False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be " + ("an integer" if integer else "a number")
    if integer and not isinstance(value, int):
        return "must be an integer"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def boolean(value: Any) -> str | None:
    """A check of a setting's value: None when it is true or false, else why not."""
    return None if isinstance(value, bool) else "must be true or false"


def number_in(lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False, integer: bool = False):
    """A check of a setting's value: None when it is a number (an integer with ``integer``) within
    the bounds (``None``: unbounded; ``*_open``: the bound itself excluded), else why not."""

    def check(value: Any) -> str | None:
        bad = _number(value, integer=integer)
        if bad:
            return bad
        if lo is not None and (value < lo or (lo_open and value == lo)):
            return f"must be {'>' if lo_open else '>='} {lo} (got {value})"
        if hi is not None and (value > hi or (hi_open and value == hi)):
            return f"must be {'<' if hi_open else '<='} {hi} (got {value})"
        return None
    return check
