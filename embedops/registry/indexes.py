"""The store's table of index records (:class:`~embedops.index.records.IndexRecord`): create, read,
update with checked state moves, delete; every change is audited."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pyarrow as pa

from embedops.audit import AuditLog
from embedops.errors import IndexNotFoundError, IndexStateError
from embedops.index.records import ALLOWED_MOVES, IndexRecord, IndexStatus, new_index_id, newest_ready
from embedops.index.table import table_name
from embedops.records import sql_str
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



__all__ = ["IndexRecord", "IndexRegistry", "IndexStatus"]

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
            index_id=index_id, model_ref=model_ref, corpus=corpus, table_name=table_name(index_id),
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
        if status is not None and status not in ALLOWED_MOVES[current.status]:
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

    def find_ready(self, model_ref: str, corpus: str, precision: str | None = None) -> IndexRecord | None:
        """The newest ready index of ``corpus`` built with ``model_ref`` (an exact ref)."""
        return newest_ready(self.list(), model_ref, corpus, precision)
