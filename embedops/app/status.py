"""One picture of a store: aliases (and which were overrides), corpora, models, indexes and the
latest guard verdict of each index, as ``embedops status`` shows it.

>>> status = store_status(registry)      # doctest: +SKIP
>>> [a.name for a in status.overrides]    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedops.corpus import CorpusInfo
from embedops.index import IndexRecord
from embedops.registry import AliasState, ModelVersion, Registry, StoredReport


@dataclass(frozen=True)
class StoreStatus:
    location: str
    aliases: list[AliasState]
    corpora: list[CorpusInfo]
    models: list[ModelVersion]
    indexes: list[IndexRecord]
    verdicts: list[StoredReport]  # the latest report of each index
    overrides: list[AliasState]  # aliases whose value came from an override promotion

    def index(self, index_id: str | None) -> IndexRecord | None:
        return next((i for i in self.indexes if i.index_id == index_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.location, "aliases": [a.to_dict() for a in self.aliases],
            "corpora": [c.__dict__ for c in self.corpora], "models": [m.to_dict() for m in self.models],
            "indexes": [i.to_dict() for i in self.indexes],
            "verdicts": [{"index_id": r.index_id, "verdict": r.verdict, "ts": r.created_at, "report_id": r.report_id}
                         for r in self.verdicts],
            "overrides": [a.to_dict() for a in self.overrides],
        }


def store_status(registry: Registry) -> StoreStatus:
    return StoreStatus(registry.store.location, registry.aliases.list(), registry.corpora.list(), registry.models.list(),
                       registry.indexes.list(), registry.reports.latest(), registry.overridden_aliases())
