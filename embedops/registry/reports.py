"""Guard reports kept in the registry, bound to exactly what they judged (:class:`ReportBinding`):
the index id and table version, the model's checksum digest, the policy hash, the gold set's digest
and the corpus version it was run on, every general set's digest, and the index the alias pointed
at when the guards ran. :mod:`embedops.registry.promotion` accepts a report only while all of these
still hold."""

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
class ReportBinding:
    """What a passing report authorises: promoting ``index_id`` at ``table_version`` (model
    ``model_digest``) to ``alias`` while the alias still points at ``alias_target``, under the policy
    ``policy_hash``, judged on the gold set ``gold_digest`` over ``corpus`` at ``corpus_version`` and
    on the general sets in ``general_digests`` ({path as given: digest})."""

    index_id: str
    table_version: int
    model_digest: str
    policy_hash: str
    alias: str
    alias_target: str | None
    corpus: str
    corpus_version: int
    gold_digest: str
    general_digests: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ReportBinding | None":
        try:
            return cls(**data) if data else None
        except TypeError:  # written by another embedops version: it binds nothing we can check
            return None


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

    @property
    def binding(self) -> ReportBinding | None:
        """What this report authorises; None for a report that binds too little to authorise anything."""
        return ReportBinding.from_dict(self.inputs.get("binding"))

    def gate(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.gates if g.get("name") == name), None)


class GuardReportStore:
    def __init__(self, store: Store, audit: AuditLog | None = None):
        self.store = store
        self.audit = audit or AuditLog(store)

    def _table(self):
        return self.store.table(REPORTS_TABLE, REPORTS_SCHEMA)

    def count(self) -> int:
        """How many records (one count, no rows read)."""
        return self._table().count_rows()

    def put(self, binding: ReportBinding, *, model_ref: str, verdict: str, inputs: dict, gates: list[dict]) -> StoredReport:
        """Store a report; ``binding`` says exactly what it was made for (kept in ``inputs``)."""
        inputs = inputs | {"binding": binding.to_dict()}
        rec = StoredReport(uuid.uuid4().hex[:12], binding.index_id, model_ref, binding.model_digest,
                           int(binding.table_version), binding.policy_hash, verdict, utcnow(), inputs, gates)
        row = rec.to_dict() | {"inputs": dumps(inputs), "gates": dumps(gates)}
        self._table().add(pa.Table.from_pylist([row], schema=REPORTS_SCHEMA))
        self.audit.record(f"guard.{verdict}", rec.index_id, report_id=rec.report_id, model=model_ref,
                          failed=[g["name"] for g in gates if g["status"] == "fail"])
        return rec

    def for_index(self, index_id: str) -> list[StoredReport]:
        rows = self._table().search().where(f"index_id = {sql_str(index_id)}").limit(None).to_arrow().to_pylist()
        return sorted(map(_from_row, rows), key=lambda r: r.created_at)

    def get(self, report_id: str) -> StoredReport | None:
        rows = self._table().search().where(f"report_id = {sql_str(report_id)}").limit(None).to_arrow().to_pylist()
        return _from_row(rows[0]) if rows else None

    def list(self) -> list[StoredReport]:
        """Every report, oldest first."""
        return sorted(map(_from_row, self._table().to_arrow().to_pylist()), key=lambda r: r.created_at)

    def latest(self) -> list[StoredReport]:
        """The newest report of every index, oldest first."""
        newest: dict[str, StoredReport] = {}
        for r in self.list():
            if r.index_id not in newest or r.created_at >= newest[r.index_id].created_at:
                newest[r.index_id] = r
        return sorted(newest.values(), key=lambda r: r.created_at)


def _from_row(row: dict[str, Any]) -> StoredReport:
    return StoredReport(**(row | {"inputs": loads(row["inputs"]), "gates": loads(row["gates"]) or []}))
