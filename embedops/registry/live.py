"""Live comparisons: what serving processes recorded when they mirrored a live query to a second index.

``embedops serve`` mirrors a share of its live queries, off the request path, to another index: the
shadow alias's (``kind="shadow"``), the stable index beside a canary (``"canary"``), or the index a
promotion replaced while production is watched after the switch (``"previous"``). Each mirrored
query becomes one :class:`LiveComparison`: overlap@k and rank correlation of the two top-k lists,
both latencies, both top ids and the query text (the biggest disagreements are shown with it).

Rows live in the store's ``live_comparisons`` LanceDB table, appended in batches by each server
(several servers on one store append to the same table; Lance commits concurrent appends without
conflict). ``embedops shadow live`` reads them.

>>> log = LiveComparisonLog(store)                                             # doctest: +SKIP
>>> log.append([LiveComparison(...)])                                          # doctest: +SKIP
>>> [r.overlap for r in log.read(since="2026-12-01T00:00:00")]                 # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import pyarrow as pa

from embedops.records import sql_str
from embedops.store import Store

TABLE = "live_comparisons"
KINDS = ("shadow", "canary", "previous")
SCHEMA = pa.schema([
    pa.field("ts", pa.string(), nullable=False),
    pa.field("server", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("alias", pa.string(), nullable=False),
    pa.field("primary_index", pa.string(), nullable=False),
    pa.field("other_index", pa.string(), nullable=False),
    pa.field("query", pa.string(), nullable=False),
    pa.field("k", pa.int32(), nullable=False),
    pa.field("overlap", pa.float32(), nullable=False),
    pa.field("rank_correlation", pa.float32(), nullable=False),
    pa.field("primary_ms", pa.float32(), nullable=False),
    pa.field("other_ms", pa.float32(), nullable=False),
    pa.field("primary_ids", pa.string(), nullable=False),  # JSON list, best first
    pa.field("other_ids", pa.string(), nullable=False),
])


@dataclass(frozen=True)
class LiveComparison:
    """One live query answered by ``primary_index`` (what the user got) and mirrored to ``other_index``."""

    ts: str
    server: str
    kind: str
    alias: str
    primary_index: str
    other_index: str
    query: str
    k: int
    overlap: float
    rank_correlation: float
    primary_ms: float
    other_ms: float
    primary_ids: tuple[str, ...] = ()
    other_ids: tuple[str, ...] = ()

    def to_row(self) -> dict:
        return asdict(self) | {"primary_ids": json.dumps(list(self.primary_ids)),
                               "other_ids": json.dumps(list(self.other_ids))}

    @classmethod
    def from_row(cls, row: dict) -> LiveComparison:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["primary_ids"] = tuple(json.loads(row["primary_ids"]))
        values["other_ids"] = tuple(json.loads(row["other_ids"]))
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self) | {"primary_ids": list(self.primary_ids), "other_ids": list(self.other_ids)}


class LiveComparisonLog:
    """The store's live comparisons: appended by servers, read by ``shadow live`` and ``canary status``."""

    def __init__(self, store: Store):
        self.store = store

    def append(self, rows: list[LiveComparison]) -> None:
        """Append ``rows`` in one commit (all or nothing)."""
        if rows:
            self.store.table(TABLE, SCHEMA).add(pa.Table.from_pylist([r.to_row() for r in rows], schema=SCHEMA))

    def compact(self) -> None:
        """Merge the small fragments many batched appends leave (a server calls it now and then)."""
        if self.store.has_table(TABLE):
            self.store.open_table(TABLE).optimize()

    def read(self, *, since: str | None = None, alias: str | None = None, kind: str | None = None) -> list[LiveComparison]:
        """Rows recorded at or after ``since`` (an ISO timestamp in UTC), oldest first."""
        if not self.store.has_table(TABLE):
            return []
        where = [f"ts >= {sql_str(since)}"] if since else []
        if alias:
            where.append(f"alias = {sql_str(alias)}")
        if kind:
            where.append(f"kind = {sql_str(kind)}")
        query = self.store.open_table(TABLE).search()
        if where:
            query = query.where(" AND ".join(where))
        rows = query.limit(None).to_arrow().to_pylist()
        return sorted((LiveComparison.from_row(r) for r in rows), key=lambda r: r.ts)
