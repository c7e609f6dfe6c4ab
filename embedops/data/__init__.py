"""General-ability sets shipped inside embedops (see README.md here for each one's source and licence), named
``bundled:NAME`` wherever a general set's path is taken (``embedops train --general-eval``,
``--general-retrieval``, ``embedops guard --general``, the pipeline's ``[train]`` and ``[guards]``).

* ``bundled:general-sts``: 132 everyday sentence pairs with 0-5 similarity scores (STS layout);
* ``bundled:general-retrieval``: 60 everyday questions over 129 short passages, each question with
  one answer and a near miss on the same subject that does not answer it. It ships as one file,
  ``general-retrieval.json``; readers get it as a BEIR directory (corpus, queries, qrels) that
  :func:`general_path` writes once into the cache folder (``$EMBEDOPS_CACHE_DIR`` or
  ``~/.cache/embedops``), named by the file's sha256.
* ``bundled:general-definitions``: 965 everyday words asked about ("what does okapi mean") over
  2,930 WordNet 3.0 definitions, each word with its own definition and a near miss (a sibling
  sense's); derived from WordNet by ``scripts/build_definitions_rail.py``, under WordNet's licence
  (README.md here). The base model scores 55.7 nDCG@10 on it: far from saturated, so it sees drift.

>>> general_path("bundled:general-retrieval").name                       # doctest: +SKIP
'general-retrieval-3f2a9c0d1e4b5a6f'
>>> general_path("my-sts.tsv")
PosixPath('my-sts.tsv')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from embedops.errors import UsageError

PREFIX = "bundled:"
BUNDLED = {"general-sts": "general-sts.tsv", "general-retrieval": "general-retrieval.json",
           "general-definitions": "general-definitions.json"}
CACHE_ENV = "EMBEDOPS_CACHE_DIR"  # the local cache folder (the store's s3 copies live there too)
GENERAL_STS = f"{PREFIX}general-sts"
GENERAL_RETRIEVAL = f"{PREFIX}general-retrieval"
GENERAL_DEFINITIONS = f"{PREFIX}general-definitions"


def cache_dir() -> Path:
    """This machine's cache folder for embedops: ``$EMBEDOPS_CACHE_DIR``, else ``~/.cache/embedops``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "embedops").expanduser()


def general_path(name_or_path: str | Path) -> Path:
    """The file or folder of a general set: a ``bundled:NAME`` (see :data:`BUNDLED`) or a path as given."""
    text = str(name_or_path)
    if not text.startswith(PREFIX):
        return Path(name_or_path)
    name = text[len(PREFIX):]
    if name not in BUNDLED:
        raise UsageError(f"no bundled general set {text!r}: use {', '.join(PREFIX + n for n in BUNDLED)}")
    path = Path(str(resources.files("embedops.data") / BUNDLED[name]))
    return _as_beir(path) if path.suffix == ".json" else path


def _as_beir(source: Path) -> Path:
    """The BEIR directory of a bundled retrieval set (``{"items": [{question, answer, near_miss}],
    "unrelated": [...]}``), written once per content into the cache folder, whole or not at all."""
    data = source.read_bytes()
    target = cache_dir() / "bundled" / f"{source.stem}-{hashlib.sha256(data).hexdigest()[:16]}"
    if (target / "qrels" / "test.tsv").is_file():
        return target
    spec = json.loads(data)
    ids: dict[str, str] = {}

    def doc(text: str) -> str:  # one id per distinct passage, in order of first use
        return ids.setdefault(text, f"g{len(ids) + 1:03d}")

    qrels = []
    for n, item in enumerate(spec["items"], 1):
        qrels.append((f"gq{n:02d}", doc(item["answer"])))
        doc(item["near_miss"])
    for text in spec["unrelated"]:
        doc(text)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    (tmp / "qrels").mkdir()
    (tmp / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                              for t, i in ids.items()), encoding="utf-8")
    (tmp / "queries.jsonl").write_text("".join(json.dumps({"_id": f"gq{n:02d}", "text": item["question"]}) + "\n"
                                               for n, item in enumerate(spec["items"], 1)), encoding="utf-8")
    (tmp / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels),
                                            encoding="utf-8")
    try:
        tmp.rename(target)
    except OSError:  # another process wrote it first: the same content
        shutil.rmtree(tmp, ignore_errors=True)
    return target
