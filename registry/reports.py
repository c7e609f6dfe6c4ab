"""Guard reports kept in the registry, bound to exactly what they judged: the index id, its table
version, the model's checksum digest, the policy hash and the hashes of the gold and general sets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from embedops.audit import AuditLog
from embedops.records import dumps, loads, sql_str
from embedops.store import Store, utcnow

REPORTS_TABLE = "guard_reports"
REPORTS_SCHEMA = pa.schema([
    pa.field("report_id", pa.string(), nullable=False),
    pa.field("index_id", pa.string(), nullable=False),
    pa.field("model_ref", pa.string(), nullable=False),
    pa.field("model_digest", pa.string(), nullable=False),
    pa.field("table_version", pa.int64(), nullable=False),
    pa.field("policy_hash", pa.string(), nullable=False),
    pa.field("verdict", pa.string(), nullable=False),
    pa.field("inputs", pa.string()),
    pa.field("gates", pa.string()),
    pa.field("created_at", pa.string(), nullable=False),
])


@dataclass(frozen=True)
class StoredReport:
    report_id: str
    index_id: str
    model_ref: str
    model_digest: str
    table_version: int
    policy_hash: str
    verdict: str
    created_at: str
    inputs: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class GuardReportStore:
    def __init__(self, store: Store, audit: AuditLog | None = None):
        self.store = store
        self.audit = audit or AuditLog(store)

    def _table(self):
        return self.store.table(REPORTS_TABLE, REPORTS_SCHEMA)

    def put(self, *, index_id: str, model_ref: str, model_digest: str, table_version: int, policy_hash: str,
            verdict: str, inputs: dict, gates: list[dict]) -> StoredReport:
        rec = StoredReport(uuid.uuid4().hex[:12], index_id, model_ref, model_digest, int(table_version), policy_hash,
                           verdict, utcnow(), inputs, gates)
        row = rec.to_dict() | {"inputs": dumps(inputs), "gates": dumps(gates)}
        self._table().add(pa.Table.from_pylist([row], schema=REPORTS_SCHEMA))
        self.audit.record(f"guard.{verdict}", index_id, report_id=rec.report_id, model=model_ref,
                          failed=[g["name"] for g in gates if g["status"] == "fail"])
        return rec

    def for_index(self, index_id: str) -> list[StoredReport]:
        rows = self._table().search().where(f"index_id = {sql_str(index_id)}").limit(None).to_arrow().to_pylist()
        reports = [StoredReport(**(r | {"inputs": loads(r["inputs"]), "gates": loads(r["gates"]) or []})) for r in rows]
        return sorted(reports, key=lambda r: r.created_at)
