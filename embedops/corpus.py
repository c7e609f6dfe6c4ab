"""Corpora: reading documents from BEIR directories or JSONL files, and keeping them in the store.

A corpus is one LanceDB table (``corpus__NAME``) with a row per document: ``id``, ``title``,
``text`` and ``content_hash`` (sha256 of title and text). Adding a file again is idempotent and
applied as one atomic ``merge_insert`` commit (insert new ids, update changed ones, delete ids that
are gone), so a reader or a killed writer never sees half of an update.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from embedops.audit import AuditLog
from embedops.checksums import sha256_text
from embedops.errors import CorpusNotFoundError, InputError, InputProblem
from embedops.records import check_name
from embedops.store import Store

CORPUS_PREFIX = "corpus__"
DOCS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
    ]
)


def content_hash(title: str, text: str) -> str:
    return sha256_text(f"{title}\x1f{text}")


@dataclass(frozen=True)
class Document:
    """One corpus document."""

    id: str
    text: str
    title: str = ""

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text)


def corpus_file(path: Path) -> Path:
    """The JSONL file behind ``path``: itself, or ``corpus.jsonl`` inside a BEIR directory."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "corpus.jsonl"
        if not candidate.is_file():
            raise InputError(InputProblem(str(path), None, None, "directory has no corpus.jsonl (not a BEIR dataset)"))
        return candidate
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such file or directory"))
    return path


def iter_jsonl(path: Path, problems: list[InputProblem]) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; append a problem for each bad one."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(InputProblem(str(path), lineno, None, f"invalid UTF-8 at byte {exc.start}"))
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(InputProblem(str(path), lineno, None, f"malformed JSON: {exc.msg} (column {exc.colno})"))
                continue
            if not isinstance(obj, dict):
                problems.append(InputProblem(str(path), lineno, None, "expected a JSON object"))
                continue
            yield lineno, obj


def read_documents(path: Path | str) -> list[Document]:
    """Read and validate every document of a BEIR directory or a JSONL file.

    Each line is ``{"_id" | "id": str, "title"?: str, "text": str}``. All problems are collected and
    raised together as one :class:`InputError` naming file, line and field.
    """
    file = corpus_file(Path(path))
    problems: list[InputProblem] = []
    docs: list[Document] = []
    first_line: dict[str, int] = {}
    for lineno, obj in iter_jsonl(file, problems):
        key = "_id" if "_id" in obj else "id"
        raw_id = obj.get(key)
        if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
            problems.append(InputProblem(str(file), lineno, "_id", "missing document id (\"_id\" or \"id\")"))
            continue
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
            problems.append(InputProblem(str(file), lineno, key, "id must be a string or integer"))
            continue
        doc_id = str(raw_id)
        title = obj.get("title") or ""
        text = obj.get("text")
        if not isinstance(title, str):
            problems.append(InputProblem(str(file), lineno, "title", "title must be a string"))
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(InputProblem(str(file), lineno, "text", "missing or empty text"))
            continue
        if doc_id in first_line:
            problems.append(
                InputProblem(str(file), lineno, key, f"duplicate id {doc_id!r} (first seen on line {first_line[doc_id]})")
            )
            continue
        first_line[doc_id] = lineno
        docs.append(Document(id=doc_id, text=text, title=title))
    if not docs and not problems:
        problems.append(InputProblem(str(file), None, None, "no documents found"))
    if problems:
        raise InputError(problems)
    return docs


@dataclass(frozen=True)
class CorpusChange:
    """What ``corpus add`` did: counts per kind of change and the table version it produced."""

    name: str
    added: int
    changed: int
    deleted: int
    unchanged: int
    version: int
    kept: int = 0  # documents the file did not name, kept (an add that is not a replace)

    @property
    def documents(self) -> int:
        """Documents in the corpus after the change."""
        return self.added + self.changed + self.unchanged + self.kept


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    documents: int
    version: int


class CorpusStore:
    """The corpora of a store."""

    def __init__(self, store: Store, audit: AuditLog | None = None):
        self.store = store
        self.audit = audit or AuditLog(store)

    @staticmethod
    def table_name(name: str) -> str:
        return CORPUS_PREFIX + check_name("corpus", name)

    def exists(self, name: str) -> bool:
        return self.store.has_table(self.table_name(name))

    def table(self, name: str, version: int | None = None):
        if not self.exists(name):
            raise CorpusNotFoundError(
                f"no corpus named {name!r} in store {self.store.location}; add it with 'embedops corpus add {name} PATH'"
            )
        return self.store.open_table(self.table_name(name), version=version)

    def add(self, name: str, path: Path | str, *, replace: bool = False) -> CorpusChange:
        """Ingest ``path`` into corpus ``name``: validated whole, then applied in one commit. New ids
        are added and changed texts updated; documents the file does not name are kept, unless
        ``replace``: then the corpus becomes exactly the file (they are deleted)."""
        tname = self.table_name(name)
        docs = read_documents(path)
        data = pa.Table.from_pylist(
            [{"id": d.id, "title": d.title, "text": d.text, "content_hash": d.content_hash} for d in docs],
            schema=DOCS_SCHEMA,
        )
        if not self.store.has_table(tname):
            tbl = self.store.create_table(tname, data)
            change = CorpusChange(name, added=len(docs), changed=0, deleted=0, unchanged=0, version=tbl.version)
        else:
            tbl = self.store.open_table(tname)
            existing = tbl.to_arrow().select(["id", "content_hash"]).to_pydict()
            old = dict(zip(existing["id"], existing["content_hash"]))
            new = {d.id: d.content_hash for d in docs}
            added = sum(1 for i in new if i not in old)
            changed = sum(1 for i, h in new.items() if i in old and old[i] != h)
            absent = sum(1 for i in old if i not in new)
            deleted, kept = (absent, 0) if replace else (0, absent)
            unchanged = len(new) - added - changed
            if added or changed or deleted:
                merge = (tbl.merge_insert("id")
                         .when_matched_update_all(where="target.content_hash != source.content_hash")
                         .when_not_matched_insert_all())
                if replace:
                    merge = merge.when_not_matched_by_source_delete()
                merge.execute(data)
            change = CorpusChange(name, added, changed, deleted, unchanged, version=tbl.version, kept=kept)
        if not (change.added or change.changed or change.deleted):
            return change  # nothing changed: nothing to record
        self.audit.record(
            "corpus.add", name, source=str(Path(path).resolve()), added=change.added, changed=change.changed,
            deleted=change.deleted, unchanged=change.unchanged, table_version=change.version,
        )
        return change

    def list(self) -> list[CorpusInfo]:
        out = []
        for t in sorted(self.store.table_names()):
            if t.startswith(CORPUS_PREFIX):
                tbl = self.store.open_table(t)
                out.append(CorpusInfo(t[len(CORPUS_PREFIX):], tbl.count_rows(), tbl.version))
        return out

    def info(self, name: str) -> CorpusInfo:
        tbl = self.table(name)
        return CorpusInfo(name, tbl.count_rows(), tbl.version)

    def texts(self, name: str) -> dict[str, str]:
        """``{id: embedded text}`` (title and body, see :func:`doc_text`) for every document of ``name``."""
        return {r["id"]: doc_text(r["title"], r["text"]) for r in self.documents(name).to_pylist()}

    def documents(self, name: str, version: int | None = None) -> pa.Table:
        """All documents of ``name`` (at table ``version``, default latest) as an Arrow table."""
        return self.table(name, version).to_arrow()


def doc_text(title: str, text: str) -> str:
    """The text embedded for a document: title and body, as BEIR evaluations do."""
    return f"{title} {text}".strip() if title else text
