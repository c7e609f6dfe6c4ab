"""One picture of a store: aliases (and which were overrides), corpora, models, indexes and the
latest guard verdict of each index, as ``embedops status`` shows it.

>>> status = store_status(registry)      # doctest: +SKIP
>>> [a.name for a in status.overrides]    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedops.corpus import CorpusInfo
from embedops.errors import NotFoundError
from embedops.index import IndexRecord
from embedops.registry import AliasState, ModelVersion, Registry, StoredReport, is_bridge_id
from embedops.registry.progressive import ProgressivePlan, progressive_plan


@dataclass(frozen=True)
class StoreStatus:
    location: str
    aliases: list[AliasState]
    corpora: list[CorpusInfo]
    models: list[ModelVersion]
    indexes: list[IndexRecord]
    verdicts: list[StoredReport]  # the latest report of each index
    overrides: list[AliasState]  # aliases whose value came from an override promotion
    bridges: list[IndexRecord] = field(default_factory=list)  # bridges an alias or canary names (views)
    rebuilds: dict[str, ProgressivePlan] = field(default_factory=dict)  # alias -> its bridge's rebuild

    def index(self, index_id: str | None) -> IndexRecord | None:
        """The index, or the bridge, ``index_id`` names."""
        return next((i for i in [*self.indexes, *self.bridges] if i.index_id == index_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.location, "aliases": [a.to_dict() for a in self.aliases],
            "corpora": [c.__dict__ for c in self.corpora], "models": [m.to_dict() for m in self.models],
            "indexes": [i.to_dict() for i in self.indexes],
            "verdicts": [{"index_id": r.index_id, "verdict": r.verdict, "ts": r.created_at, "report_id": r.report_id}
                         for r in self.verdicts],
            "overrides": [a.to_dict() for a in self.overrides],
            "bridges": [b.to_dict() for b in self.bridges],
            "rebuilds": {alias: {"index_id": p.new_index.index_id, "status": p.new_index.status.value,
                                 "documents": p.done, "of": p.total, "share": p.share,
                                 "progressive_from": p.start_at, "progressive": p.active}
                         for alias, p in self.rebuilds.items()},
        }


def store_status(registry: Registry) -> StoreStatus:
    aliases = registry.aliases.list()
    named = {t for a in aliases for t in (a.value, a.canary.index_id if a.canary else None) if is_bridge_id(t)}
    bridges = []
    for adapter_id in sorted(named):
        try:
            bridges.append(registry.target(adapter_id))
        except NotFoundError:  # its adapter or old index is gone: the alias row says "-"
            continue
    rebuilds = {}
    for a in aliases:  # how far each served bridge's new model has re-embedded the corpus
        rec = next((b for b in bridges if b.index_id == a.value), None)
        plan = progressive_plan(registry, rec, a.report_id) if rec is not None else None
        if plan is not None:
            rebuilds[a.name] = plan
    return StoreStatus(registry.store.location, aliases, registry.corpora.list(), registry.models.list(),
                       registry.indexes.list(), registry.reports.latest(), registry.overridden_aliases(), bridges,
                       rebuilds)
