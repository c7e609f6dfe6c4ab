"""Progressive bridges behind an alias (issue #35): while the bridge's new model re-embeds the
corpus, an alias that serves the bridge answers from both spaces once the guards measured that it
helps.

A bridge promoted on a guard report whose bridge lift gate measured the progressive merge
(:mod:`embedops.guards.bridge_lift`) carries ``progressive_from``: the share of the rebuild from
which the merge was at least the plain bridge on the gold queries. :func:`progressive_plan` finds the
new model's index of the bridge's corpus (being built, or done), counts what it holds now and says
whether that share is reached; :func:`open_progressive` opens a
:class:`~embedops.index.ProgressiveReader` over it. Below that share, with no such index, or with
an override and no report, the alias answers from the plain bridge: nothing the guards did not
measure reaches users.

>>> plan = progressive_plan(registry, registry.target("adapter-1a2b3c4d5e6f"), report_id)   # doctest: +SKIP
>>> plan.share, plan.active                                                                # doctest: +SKIP
(0.62, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedops.errors import UsageError
from embedops.index import IndexReader, IndexRecord, IndexStatus, ProgressiveReader
from embedops.index.reader import TextEncoder

if TYPE_CHECKING:
    from embedops.registry import Registry

PROGRESSIVE_SHARES = (0.25, 0.5, 0.75)  # the shares of the rebuild the bridge lift gate measures


def reembedded_by(share: float) -> Callable[[str], bool]:
    """Whether a document is among ``share`` of the corpus, by a hash of its id: the gate's stand-in
    for a rebuild that far along (nested: a document in at 25% is in at 50%)."""
    def inside(doc_id: str) -> bool:
        digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < share
    return inside


@dataclass(frozen=True)
class ProgressivePlan:
    """The new model's index of a bridge's corpus and how far it is: ``done`` of ``total``
    documents at table version ``version``; ``start_at``, the share the authorising report measured
    the merge to hold up from (None: never)."""

    new_index: IndexRecord
    done: int
    total: int
    version: int
    start_at: float | None

    @property
    def share(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def active(self) -> bool:
        """Whether an alias serving the bridge answers progressively now."""
        return self.start_at is not None and self.share >= self.start_at

    @property
    def key(self) -> tuple[str, int | None, bool]:
        """What a server compares to know its reader must be reopened: the threshold crossed, or,
        once progressive, each commit of the build (below the threshold commits change nothing)."""
        return self.new_index.index_id, self.version if self.active else None, self.active


def _rebuild_of(registry: Registry, rec: IndexRecord) -> IndexRecord | None:
    """The newest index of the bridge's new model on its corpus that is being built or is ready."""
    found = [i for i in registry.indexes.list() if i.model_ref == rec.model_ref and i.corpus == rec.corpus
             and i.status in (IndexStatus.BUILDING, IndexStatus.READY)]
    return max(found, key=lambda i: i.created_at) if found else None


def start_share(registry: Registry, report_id: str | None) -> float | None:
    """``progressive_from`` of the bridge lift gate of report ``report_id`` (None when there is no
    report, the gate did not pass, or it measured no share that holds up)."""
    report = registry.reports.get(report_id) if report_id else None
    gate = report.gate("bridge_lift") if report else None
    if not gate or gate.get("status") != "pass":
        return None
    return ((gate.get("evidence") or {}).get("progressive") or {}).get("progressive_from")


def progressive_plan(registry: Registry, rec: IndexRecord, report_id: str | None) -> ProgressivePlan | None:
    """How bridge ``rec`` (promoted on report ``report_id``) stands against its model's rebuild:
    None when ``rec`` is not a bridge or no rebuild exists."""
    if rec.bridge is None:
        return None
    new = _rebuild_of(registry, rec)
    if new is None:
        return None
    table = registry.store.open_table(new.table_name, version=new.table_version if new.status is IndexStatus.READY
                                      else None)
    return ProgressivePlan(new, table.count_rows(), int(rec.doc_count or 0), int(table.version),
                           start_share(registry, report_id))


def open_progressive(registry: Registry, rec: IndexRecord, new: IndexRecord, version: int | None,
                     encoder: TextEncoder, map_query: Callable, reembedded: set[str] | None = None) -> ProgressiveReader:
    """Bridge ``rec`` answering from both spaces, the new model's index ``new`` read at table
    ``version`` (None: its latest): ``encoder`` is the new model's (unmapped), ``map_query`` the
    adapter's map, and the score line comes from the adapter's fit."""
    calibration = registry.adapters.get(rec.bridge.adapter_id).meta.get("fit", {}).get("calibration")
    if not calibration:
        raise UsageError(f"adapter {rec.bridge.adapter_id} was fitted before score calibration was measured; fit it "
                         "again ('embedops adapter fit') to merge its scores with the new index's")
    old = registry.indexes.get(rec.bridge.index_id)
    readers = [IndexReader(registry.store.open_table(r.table_name, version=v), r)
               for r, v in ((old, old.table_version), (new, version))]
    return ProgressiveReader(*readers, rec, encoder, map_query, (calibration["scale"], calibration["shift"]),
                             reembedded)
