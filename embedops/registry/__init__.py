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
from embedops.errors import AliasConflictError, IndexStateError, NotFoundError, PromotionRefused, UsageError
from embedops.index import IndexRecord, IndexStatus, table_name
from embedops.registry.adapters import AdapterRecord, AdapterRegistry
from embedops.registry.aliases import UNSET, AliasRegistry, AliasState, Canary
from embedops.registry.artifacts import ArtifactRecord, ArtifactRegistry
from embedops.registry.exports import (
    OpenExport,
    PrecisionChoice,
    choose_precision,
    ensure_export,
    open_encoder,
    open_export,
    verified_model_dir,
)
from embedops.registry.indexes import IndexRegistry
from embedops.registry.live import LiveComparison, LiveComparisonLog
from embedops.registry.models import ModelRegistry, ModelVersion, parse_ref
from embedops.registry.policy import Policy, load_policy
from embedops.registry.promotion import authorising_report
from embedops.registry.reports import GuardReportStore, ReportBinding, StoredReport
from embedops.registry.search import Hit, Searcher, SearchResult
from embedops.registry.targets import is_bridge_id, serving_target
from embedops.store import Store

__all__ = [
    "AdapterRecord", "AdapterRegistry", "AliasRegistry", "AliasState", "ArtifactRecord", "Canary", "ArtifactRegistry", "AuditEvent", "Hit", "IndexRecord", "IndexRegistry",
    "IndexStatus", "GuardReportStore", "LiveComparison", "LiveComparisonLog", "ModelRegistry", "ModelVersion", "OpenExport", "Policy", "PromotionRefused",
    "PrecisionChoice", "Registry", "ReportBinding", "SearchResult", "Searcher", "StoredReport", "UNSET",
    "authorising_report", "choose_precision", "is_bridge_id", "serving_target", "ensure_export", "find_ready_index", "load_policy", "open_encoder", "open_export", "parse_ref", "verified_model_dir",
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
        self.artifacts = ArtifactRegistry(store, self.audit)
        self.adapters = AdapterRegistry(self.artifacts)
        self.reports = GuardReportStore(store, self.audit)
        self.live = LiveComparisonLog(store)

    def target(self, target_id: str) -> IndexRecord:
        """What an alias may point at: the index ``target_id``, or the bridge an adapter id names
        (:mod:`embedops.registry.targets`)."""
        return serving_target(self, target_id)

    def promote(self, index_id: str, alias: str = "production", *, policy: Policy | None = None, expect=UNSET,
                reason: str | None = None, override: bool = False, gold_digest: str | None = None,
                general_digests: list[str] | None = None, by: str | None = None) -> AliasState:
        """Point ``alias`` at a ready index: the one way any code switches an alias to a new index.

        Allowed only when a guard report authorises exactly this switch now under ``policy``
        (default: the built-in defaults; see :mod:`embedops.registry.promotion`), else
        :class:`PromotionRefused`. ``override=True`` with a ``reason`` skips that check; the alias
        record and the audit log keep it, and ``status``/``history`` flag it until the alias moves.
        The switch is a compare-and-swap against the value the check saw (or ``expect``), so an
        alias moved by someone else in between is a conflict, never a silent overwrite. While the
        alias has a canary, only the canary index may be promoted (abort it first otherwise).
        ``by`` names the actor in the alias log and audit (default: :func:`embedops.records.actor`).
        """
        rec, head, report, reason = self._authorise(index_id, alias, policy, expect, reason, override, gold_digest,
                                                    general_digests, what="promotion")
        seen = head.value if head else None
        if head is not None and head.canary is not None and head.canary.index_id != index_id:
            raise UsageError(f"alias {alias!r} has a canary of {head.canary.index_id} at {head.canary.percent:g}%; "
                             "promote it ('embedops canary promote') or abort it ('embedops canary abort') first")
        # compare-and-swap against what was checked: if the alias moved since, this is a conflict
        state = self.aliases._switch(alias, index_id, expect=seen, reason=reason, action="promote",
                                     report_id=report.report_id if report else None, override=override, by=by)
        if override:
            self.audit.record("promote.override", index_id, reason=reason, by=by, alias=alias, previous=state.previous)
        return state

    def _authorise(self, index_id: str, alias: str, policy: Policy | None, expect, reason: str | None, override: bool,
                   gold_digest: str | None, general_digests: list[str] | None, *, what: str):
        """The checks a promotion and a canary share: the index is ready, the alias is where the caller
        expects, and a report authorises it (or an override has a reason). One read of the alias."""
        rec = self.target(index_id)
        if rec.status is not IndexStatus.READY:
            raise IndexStateError(f"{rec.label} is {rec.status.value}; only ready indexes can be promoted")
        head = self.aliases.get(alias)
        seen = head.value if head else None
        if expect is not UNSET and expect != seen:
            raise AliasConflictError(f"alias {alias!r} points at {seen!r}, not the expected {expect!r}; someone else "
                                     "switched it. Re-read it ('embedops alias show') and retry.")
        report = None
        if override:
            if not (reason and reason.strip()):
                raise UsageError(f"an override {what} needs a reason (it is recorded in the audit log)")
        else:
            doing = None if what == "promotion" else f"start a canary of {index_id} on {alias} (it needs what a promotion needs)"
            report = authorising_report(self, index_id, alias, policy or Policy(), gold_digest=gold_digest,
                                        general_digests=general_digests, record=rec, target=seen, doing=doing)
            reason = reason or f"guard report {report.report_id} passed"
        return rec, head, report, reason

    def start_canary(self, index_id: str, alias: str = "production", percent: float = 10.0, *,
                     policy: Policy | None = None, expect=UNSET, reason: str | None = None, override: bool = False,
                     gold_digest: str | None = None, general_digests: list[str] | None = None) -> AliasState:
        """Let ``index_id`` answer ``percent`` of ``alias``'s traffic (sticky by client key) while the
        alias keeps its value; again with the same index, change its share.

        The same rule as :meth:`promote`: a report that authorises promoting ``index_id`` to ``alias``
        now, or ``override=True`` with a ``reason`` (recorded). ``canary promote`` is then an ordinary
        promotion of the canary index, which that report still authorises (the alias has not moved)."""
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent < 100:
            raise UsageError(f"a canary share must be more than 0 and less than 100 percent (got {percent!r}); "
                             "to send it all the traffic, promote it")
        rec, head, report, reason = self._authorise(index_id, alias, policy, expect, reason, override, gold_digest,
                                                    general_digests, what="canary")
        if head is None or head.value is None:
            raise UsageError(f"alias {alias!r} points at no index yet: a canary needs a stable index beside it; "
                             f"promote {index_id} instead")
        if head.value == index_id:
            raise UsageError(f"alias {alias!r} already points at {index_id}")
        running = head.canary
        if running is not None and running.index_id != index_id:
            raise UsageError(f"alias {alias!r} already has a canary of {running.index_id} at {running.percent:g}%; "
                             "promote or abort it first")
        canary = Canary(index_id, float(percent), report.report_id if report else None, override)
        state = self.aliases._set_canary(alias, canary, expect=head.value,
                                         expect_canary=running.index_id if running else None, reason=reason,
                                         action="canary.ramp" if running else "canary.start")
        if override:
            self.audit.record("canary.override", index_id, reason=reason, alias=alias, percent=float(percent))
        return state

    def promote_canary(self, alias: str = "production", *, policy: Policy | None = None, reason: str | None = None,
                       override: bool = False, gold_digest: str | None = None,
                       general_digests: list[str] | None = None) -> AliasState:
        """Promote ``alias``'s canary index to all of its traffic (:meth:`promote`, same rule)."""
        head = self.aliases.get(alias)
        if head is None or head.canary is None:
            raise UsageError(f"alias {alias!r} has no canary to promote ('embedops canary start INDEX_ID' first)")
        return self.promote(head.canary.index_id, alias, policy=policy, expect=head.value, reason=reason,
                            override=override, gold_digest=gold_digest, general_digests=general_digests)

    def abort_canary(self, alias: str = "production", *, reason: str | None = None, expect_canary: str | None = None,
                     by: str | None = None, automatic: bool = False) -> AliasState:
        """End ``alias``'s canary: all its traffic goes back to its value. Like a rollback, never
        refused for want of a report; ``expect_canary`` makes it a no-op conflict if another canary
        runs now (an automatic abort names the one it judged)."""
        head = self.aliases.get(alias)
        if head is None or head.canary is None:
            raise UsageError(f"alias {alias!r} has no canary to abort")
        if expect_canary is not None and expect_canary != head.canary.index_id:
            raise AliasConflictError(f"alias {alias!r} has canary {head.canary.index_id}, not the expected "
                                     f"{expect_canary}; someone else changed it")
        return self.aliases._set_canary(alias, None, expect=head.value, expect_canary=head.canary.index_id,
                                        reason=reason, action="canary.abort", by=by, automatic=automatic)

    def overridden_aliases(self) -> list[AliasState]:
        """Aliases whose current value came from an override promotion (flagged until they move; a
        canary started or ended beside it does not move it), or whose canary was started by override."""
        out = []
        for a in self.aliases.list():
            if not (a.override or (a.canary and a.canary.override)):
                continue
            hist = self.aliases.history(a.name)[::-1]
            if a.override:  # the record that made the override (its actor, time and reason)
                out.append(next((h for h in hist if h.action == "promote" and h.value == a.value), a))
            if a.canary and a.canary.override:
                out.append(next((h for h in hist if h.canary and h.canary.index_id == a.canary.index_id
                                 and h.action in ("canary.start", "canary.ramp")), a))
        return out

    def lineage_root(self, model_ref: str) -> str:
        """The original base model of ``model_ref``'s lineage (itself when it has no parent)."""
        model = self.models.get(model_ref)
        seen = {model.ref}
        while model.parent and model.parent not in seen:
            model = self.models.get(model.parent)
            seen.add(model.ref)
        return model.ref

    def rollback(self, alias: str = "production", *, reason: str | None = None, expect=UNSET, by: str | None = None,
                 automatic: bool = False) -> AliasState:
        """Point ``alias`` back at its previous index (and end any canary): one O(1) compare-and-swap,
        never refused for want of a guard report. ``by`` and ``automatic`` are for a server's rollback
        policy, which acts through this same path."""
        return self.aliases._rollback(alias, reason=reason, expect=expect, by=by, automatic=automatic)

    def protected_indexes(self) -> dict[str, str]:
        """Index ids that must not be retired or dropped, with why: alias targets and production's
        previous value (the rollback target)."""
        out: dict[str, str] = {}
        for a in self.aliases.list():
            if a.value:
                out[a.value] = f"alias {a.name!r} points at it"
            if a.canary:
                out[a.canary.index_id] = f"it is alias {a.name!r}'s canary"
            if a.name == "production" and a.previous and a.previous not in out:
                out[a.previous] = "it is production's previous value (the rollback target)"
        for target_id, why in list(out.items()):  # a bridge searches its old index: keep that index too
            if is_bridge_id(target_id):
                try:
                    out.setdefault(self.adapters.get(target_id).index_id, f"bridge {target_id} searches it ({why})")
                except NotFoundError:  # an adapter that is gone protects nothing
                    continue
        return out

    def retire(self, index_id: str, reason: str | None = None) -> IndexRecord:
        why = self.protected_indexes().get(index_id)
        if why:
            raise IndexStateError(f"index {index_id} cannot be retired: {why}")
        return self.indexes.update(index_id, status=IndexStatus.RETIRED, reason=reason)

    def drop(self, index_id: str, reason: str | None = None) -> None:
        """Delete a retired index's table and record."""
        rec = self.indexes.get(index_id)
        why = self.protected_indexes().get(index_id)
        if why:
            raise IndexStateError(f"index {index_id} cannot be dropped: {why}")
        if rec.status is not IndexStatus.RETIRED:
            raise IndexStateError(f"index {index_id} is {rec.status.value}; retire it first ('embedops index retire')")
        self.store.drop_table(table_name(rec.index_id))
        self.indexes.delete(index_id, reason=reason)

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
                    details={"value": s.value, "previous": s.previous, "seq": s.seq, "report_id": s.report_id,
                             "override": s.override, "canary": s.canary.to_dict() if s.canary else None,
                             "automatic": s.automatic},
                    event_id=f"alias:{alias.name}:{s.seq}",
                ))
        events.sort(key=lambda e: e.ts)
        return events[-limit:] if limit else events


def find_ready_index(registry: Registry, model_ref: str, corpus: str, precision: str | None = None) -> IndexRecord | None:
    """The newest ready index of ``corpus`` built with ``model_ref`` (any ref form: ``minilm``,
    ``minilm@2``) and ``precision`` (any when None), if there is one."""
    return registry.indexes.find_ready(registry.models.get(model_ref).ref, corpus, precision)
