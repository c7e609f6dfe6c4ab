"""General-ability sets shipped inside embedops (CC0, written for it; see README.md here), named
``bundled:NAME`` wherever a general set's path is taken (``embedops train --general-eval``,
``--general-retrieval``, ``embedops guard --general``, the pipeline's ``[train]`` and ``[guards]``).

* ``bundled:general-sts``: 132 everyday sentence pairs with 0-5 similarity scores (STS layout);
* ``bundled:general-retrieval``: 60 everyday questions over 129 short passages, a BEIR directory in
  which each question has one answer and a near miss on the same subject that does not answer it.

>>> general_path("bundled:general-retrieval").name
'general-retrieval'
>>> general_path("my-sts.tsv")
PosixPath('my-sts.tsv')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from embedops.errors import UsageError

PREFIX = "bundled:"
BUNDLED = {"general-sts": "general-sts.tsv", "general-retrieval": "general-retrieval"}
GENERAL_STS = f"{PREFIX}general-sts"
GENERAL_RETRIEVAL = f"{PREFIX}general-retrieval"


def general_path(name_or_path: str | Path) -> Path:
    """The file or folder of a general set: a ``bundled:NAME`` (see :data:`BUNDLED`) or a path as given."""
    text = str(name_or_path)
    if not text.startswith(PREFIX):
        return Path(name_or_path)
    name = text[len(PREFIX):]
    if name not in BUNDLED:
        raise UsageError(f"no bundled general set {text!r}: use {', '.join(PREFIX + n for n in BUNDLED)}")
    return Path(str(resources.files("embedops.data") / BUNDLED[name]))
