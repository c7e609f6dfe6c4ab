"""Index records: which (model version, corpus) an embedding table was built for, and its state.

The re-embedding stage writes the table itself; the registry keeps the record that says whether it
may serve. States: ``building`` -> ``ready`` | ``failed``; ``ready`` -> ``retired``.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from embedops.audit import AuditLog
from embedops.errors import IndexNotFoundError, IndexStateError, UnsafePathError
from embedops.records import dumps, loads, sql_str
from embedops.store import Store, utcnow

INDEXES_TABLE = "indexes"
INDEXES_SCHEMA = pa.schema(
    [
        pa.field("index_id", pa.string(), nullable=False),
        pa.field("model_ref", pa.string(), nullable=False),
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("table_version", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("doc_count", pa.int64()),
        pa.field("params", pa.string()),
        pa.field("metrics", pa.string()),
        pa.field("created_at", pa.string(), nullable=False),
        pa.field("updated_at", pa.string(), nullable=False),
    ]
)


_INDEX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")


class IndexStatus(str, enum.Enum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    RETIRED = "retired"


_ALLOWED = {
    IndexStatus.BUILDING: {IndexStatus.BUILDING, IndexStatus.READY, IndexStatus.FAILED},
    IndexStatus.FAILED: {IndexStatus.BUILDING, IndexStatus.FAILED},
    IndexStatus.READY: {IndexStatus.READY, IndexStatus.RETIRED},
    IndexStatus.RETIRED: {IndexStatus.RETIRED, IndexStatus.READY},
}


@dataclass(frozen=True)
class IndexRecord:
    """One corpus index: embeddings of ``corpus`` by ``model_ref`` in LanceDB table ``table_name``."""

    index_id: str
    model_ref: str
    corpus: str
    table_name: str
    status: IndexStatus
    created_at: str
    updated_at: str
    table_version: int | None = None
    doc_count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_id": self.index_id, "model_ref": self.model_ref, "corpus": self.corpus,
            "table_name": self.table_name, "table_version": self.table_version,
            "status": self.status.value, "doc_count": self.doc_count, "params": self.params,
            "metrics": self.metrics, "created_at": self.created_at, "updated_at": self.updated_at,
        }

    def _row(self) -> dict[str, Any]:
        return self.to_dict() | {"params": dumps(self.params), "metrics": dumps(self.metrics)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "IndexRecord":
        if row["table_name"] != f"index__{row['index_id']}" or not _INDEX_ID.match(row["index_id"]):
            raise UnsafePathError(f"index record {row['index_id']!r} names table {row['table_name']!r}, not its own "
                                  "index__<id> table; refusing to read or drop it (the row was altered)")
        return cls(
            index_id=row["index_id"], model_ref=row["model_ref"], corpus=row["corpus"],
            table_name=row["table_name"], status=IndexStatus(row["status"]), created_at=row["created_at"],
            updated_at=row["updated_at"], table_version=row["table_version"], doc_count=row["doc_count"],
            params=loads(row["params"]), metrics=loads(row["metrics"]),
        )


def new_index_id(model_ref: str, corpus: str) -> str:
    name, _, version = model_ref.partition("@")
    return f"{corpus}--{name}-v{version}--{uuid.uuid4().hex[:8]}"


class IndexRegistry:
    """Index records of a store."""

    def __init__(self, store: Store, audit: AuditLog | None = None):
        self.store = store
        self.audit = audit or AuditLog(store)

    def _table(self):
        return self.store.table(INDEXES_TABLE, INDEXES_SCHEMA)

    def create(self, model_ref: str, corpus: str, *, params: dict[str, Any] | None = None,
               index_id: str | None = None) -> IndexRecord:
        index_id = index_id or new_index_id(model_ref, corpus)
        now = utcnow()
        record = IndexRecord(
            index_id=index_id, model_ref=model_ref, corpus=corpus, table_name=f"index__{index_id}",
            status=IndexStatus.BUILDING, created_at=now, updated_at=now, params=params or {},
        )
        self._table().add(pa.Table.from_pylist([record._row()], schema=INDEXES_SCHEMA))
        self.audit.record("index.create", index_id, model=model_ref, corpus=corpus, params=record.params)
        return record

    def get(self, index_id: str) -> IndexRecord:
        rows = self._table().search().where(f"index_id = {sql_str(index_id)}").limit(None).to_arrow().to_pylist()
        if not rows:
            raise IndexNotFoundError(f"no index {index_id!r} in store {self.store.location}; see 'embedops index list'")
        return IndexRecord.from_row(rows[0])

    def list(self) -> list[IndexRecord]:
        rows = self._table().to_arrow().to_pylist()
        return sorted((IndexRecord.from_row(r) for r in rows), key=lambda r: r.created_at)

    def update(self, index_id: str, *, status: IndexStatus | None = None, reason: str | None = None,
               **fields: Any) -> IndexRecord:
        """Change fields of a record (one atomic table commit); status moves are checked."""
        current = self.get(index_id)
        if status is not None and status not in _ALLOWED[current.status]:
            raise IndexStateError(f"index {index_id}: cannot go from {current.status.value} to {status.value}")
        new = replace(current, status=status or current.status, updated_at=utcnow(), **fields)
        row = new._row()
        values = {k: row[k] for k in ("status", "updated_at", "table_version", "doc_count", "params", "metrics")}
        self._table().update(where=f"index_id = {sql_str(index_id)}", values=values)
        if status is not None and status != current.status:
            self.audit.record(f"index.{status.value}", index_id, reason=reason, previous=current.status.value)
        return new

    def delete(self, index_id: str, reason: str | None = None) -> None:
        self._table().delete(f"index_id = {sql_str(index_id)}")
        self.audit.record("index.drop", index_id, reason=reason)
