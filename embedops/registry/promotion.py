"""The promotion rule: which guard report, if any, authorises pointing an alias at an index now.

A report authorises promoting ``index_id`` to ``alias`` only when all of these hold:

* its verdict is ``pass`` and every gate the policy requires ran and passed;
* it was made under the policy in force (same hash);
* the index is still at the table version it judged, built by the model with the same checksum
  digest;
* it was judged against this alias, and the alias still points where it pointed then (if someone
  promoted or rolled back since, the report is stale: its comparison no longer says anything about
  the production the candidate would replace);
* the corpus is still at the version the gold set was run on;
* when the caller names a gold set or general sets, the report was run on exactly those (digests).

:meth:`embedops.registry.Registry.promote` applies this rule to every promotion (the CLI, the
pipeline, the demo and library callers alike); an explicit override with a reason is the only way
around it, and it is recorded. Rollback never needs a report.
"""

from __future__ import annotations

from embedops.errors import PromotionRefused
from embedops.registry.policy import Policy
from embedops.registry.reports import StoredReport

_READ = object()  # authorising_report(target=...) not given: read the alias now


def authorising_report(registry, index_id: str, alias: str, policy: Policy, *, gold_digest: str | None = None,
                       general_digests: list[str] | None = None, record=None, target=_READ,
                       doing: str | None = None) -> StoredReport:
    """The newest report that authorises promoting ``index_id`` to ``alias`` now (see the module
    docstring), or :class:`~embedops.errors.PromotionRefused` saying why the newest one does not.

    ``record`` (the index record) and ``target`` (where the alias points) are read from the store
    unless the caller has just read them: :meth:`Registry.promote` passes the values its
    compare-and-swap will expect, so the check and the switch rest on one read. ``doing`` names the
    refused action in the message (default: ``promote INDEX to ALIAS``)."""
    doing = doing or f"promote {index_id} to {alias}"
    record = record or registry.target(index_id)  # an index, or a bridge's view of its old index
    model = registry.models.get(record.model_ref)
    if target is _READ:
        head = registry.aliases.get(alias)
        target = head.value if head else None
    corpus_version = registry.corpora.info(record.corpus).version
    hint = (f"Re-run 'embedops guard {index_id} --alias {alias} --gold DIR --general DIR|TSV', "
            "or promote with --force --reason TEXT (recorded as an override)")
    reports = registry.reports.for_index(index_id)
    if not reports:
        raise PromotionRefused(f"cannot {doing}: it has no guard report. {hint}")
    why = None
    for report in reversed(reports):
        problem = _mismatch(report, record, model.digest, alias, target, corpus_version, policy,
                            gold_digest, general_digests)
        if problem is None:
            return report
        why = why or f"its latest report ({reports[-1].report_id}) {problem}"
    raise PromotionRefused(f"cannot {doing}: {why}. {hint}")


def _mismatch(report: StoredReport, record, model_digest: str, alias: str, target: str | None, corpus_version: int,
              policy: Policy, gold_digest: str | None, general_digests: list[str] | None) -> str | None:
    """Why ``report`` does not authorise the promotion now, or None when it does."""
    if report.verdict != "pass":
        failed = [g["name"] for g in report.gates if g.get("status") == "fail"]
        return "failed: " + ", ".join(failed or ["verdict " + report.verdict])
    binding = report.binding
    if binding is None:
        return "was made by an older embedops and does not bind the gold set and production it was judged against"
    if binding.policy_hash != policy.hash:
        return f"was made under policy {binding.policy_hash}, but the policy now is {policy.hash}"
    if binding.table_version != (record.table_version or 0):
        return (f"judged table version {binding.table_version}, but the index is now at table version "
                f"{record.table_version}")
    if binding.model_digest != model_digest:
        return f"judged model digest {binding.model_digest[:12]}, but {record.model_ref} now has digest {model_digest[:12]}"
    if binding.alias != alias:
        return f"was judged against alias {binding.alias!r}, not {alias!r}"
    if binding.alias_target != target:
        return (f"is stale: {alias} pointed at {binding.alias_target or 'nothing'} when the guards ran and points at "
                f"{target or 'nothing'} now; re-run the guards against the new {alias}")
    if binding.corpus_version != corpus_version:
        return (f"was run on corpus {binding.corpus!r} at version {binding.corpus_version}, which is now at version "
                f"{corpus_version}; sync the index ('embedops index sync') and re-run the guards")
    for gate in policy.required_gates:
        g = report.gate(gate)
        if g is None or g.get("status") != "pass":
            return (f"lacks a pass from the required gate {gate!r}"
                    + (f" ({g['status']}: {g.get('reason', '')})" if g else " (it did not run)"))
    if gold_digest is not None and binding.gold_digest != gold_digest:
        return f"was run on another gold set (digest {binding.gold_digest}, expected {gold_digest})"
    missing = [d for d in general_digests or [] if d not in binding.general_digests.values()]
    if missing:
        return f"was not run on the general set with digest {missing[0]}"
    return None
