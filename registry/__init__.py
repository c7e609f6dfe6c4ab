"""The registry: model versions, corpus indexes, aliases and the audit trail of a store.

>>> from embedops.store import Store
>>> from embedops.registry import Registry
>>> reg = Registry(Store.open("./embedops-store"))
>>> reg.models.register("minilm", "/path/to/sentence-transformers-model").ref   # doctest: +SKIP
'minilm@1'
"""

from __future__ import annotations

from embedops.audit import AuditEvent, AuditLog
from embedops.corpus import CorpusStore
from embedops.registry.aliases import UNSET, AliasRegistry, AliasState
from embedops.registry.indexes import IndexRecord, IndexRegistry, IndexStatus
from embedops.registry.models import ModelRegistry, ModelVersion, parse_ref
from embedops.store import Store

__all__ = [
    "AliasRegistry", "AliasState", "AuditEvent", "IndexRecord", "IndexRegistry", "IndexStatus",
    "ModelRegistry", "ModelVersion", "Registry", "UNSET", "parse_ref",
]


class Registry:
    """Everything the registry keeps for one store."""

    def __init__(self, store: Store):
        self.store = store
        self.audit = AuditLog(store)
        self.corpora = CorpusStore(store, self.audit)
        self.models = ModelRegistry(store, self.audit)
        self.indexes = IndexRegistry(store, self.audit)
        self.aliases = AliasRegistry(store)

    def history(self, limit: int | None = None) -> list[AuditEvent]:
        """Every change, oldest first: the events table plus every alias switch.

        Alias switches are read from the aliases' own compare-and-swap logs, which are the record of
        truth for them, so the history can never miss a switch or show one that did not happen.
        """
        events = list(self.audit.events())
        for alias in self.aliases.list():
            for s in self.aliases.history(alias.name):
                events.append(AuditEvent(
                    ts=s.ts, actor=s.actor, action=f"alias.{s.action}", subject=alias.name, reason=s.reason,
                    details={"value": s.value, "previous": s.previous, "seq": s.seq},
                    event_id=f"alias:{alias.name}:{s.seq}",
                ))
        events.sort(key=lambda e: e.ts)
        return events[-limit:] if limit else events
