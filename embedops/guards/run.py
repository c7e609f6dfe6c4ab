"""Run the gates for a candidate index, store the report in the registry, and decide promotions.

>>> report = run_guards(reg, "scifact--minilm-v2--1a2b3c4d", gold=Path("../shared/data/scifact"),
...                     general=[Path("../shared/data/general-stsb/sts-test.tsv")])   # doctest: +SKIP
>>> report.verdict                                                                       # doctest: +SKIP
'pass'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import embedops.guards.bridge_lift  # noqa: F401
import embedops.guards.domain  # noqa: F401  (the built-in gates register themselves, in their order)
import embedops.guards.forgetting  # noqa: F401
import embedops.guards.integrity  # noqa: F401
import embedops.guards.latency  # noqa: F401
import embedops.guards.parity  # noqa: F401
import embedops.guards.slices  # noqa: F401
from embedops.beir import benchmark_digest, read_gold
from embedops.errors import PromotionRefused
from embedops.guards.domain import recall_curve
from embedops.guards.gate import FAIL, PASS, SKIP, GateResult, GuardContext
from embedops.guards.plugins import registered_gates
from embedops.guards.policy import Policy
from embedops.registry import Registry, ReportBinding, Searcher, StoredReport, authorising_report

__all__ = ["GuardReport", "PromotionRefused", "passing_report", "run_guards"]


@dataclass
class GuardReport:
    stored: StoredReport
    gates: list[GateResult]
    evidence: dict[str, Any] = field(default_factory=dict)
    html: Path | None = None

    @property
    def verdict(self) -> str:
        return self.stored.verdict

    def to_dict(self) -> dict[str, Any]:
        return self.stored.to_dict() | {"html": str(self.html) if self.html else None}


def require(gates: list[GateResult], policy: Policy) -> list[GateResult]:
    """Gates with every gate the policy requires but that did not run to a verdict (skipped or
    absent) turned into a failure: a required gate must have run and passed."""
    out = []
    for g in gates:
        if g.name in policy.required_gates and g.status == SKIP:
            g = GateResult(g.name, FAIL, g.value, g.threshold, f"required by the policy but skipped: {g.reason}", g.evidence)
        out.append(g)
    missing = [name for name in policy.required_gates if name not in {g.name for g in gates}]
    return out + [GateResult(name, FAIL, None, None, "required by the policy but did not run") for name in missing]


def run_guards(registry: Registry, index_id: str, *, gold: Path, general: list[Path] | None = None,
               policy: Policy | None = None, alias: str = "production", html_dir: Path | None = None) -> GuardReport:
    """Run every registered gate (:func:`~embedops.guards.plugins.registered_gates`) for ``index_id``
    (an index, or a bridge named by its adapter id) against what ``alias`` points at, store the
    report bound to exactly what was judged (:class:`~embedops.registry.ReportBinding`) and return it.

    Each (model, precision) is opened once: its export verified and one ONNX Runtime session
    started for the whole run (:func:`embedops.registry.open_export`)."""
    policy = policy or Policy()
    general = [Path(g) for g in general or []]
    general_digests = {str(g): benchmark_digest(g) for g in general}  # also: every path exists
    record = registry.target(index_id)  # an index, or a bridge (an adapter id): its old index's view
    model = registry.models.get(record.model_ref)
    queries, qrels, gold_hash = read_gold(Path(gold))
    current = registry.aliases.get(alias)
    target = current.value if current else None
    production_id = target if target != index_id else None
    corpus_version = registry.corpora.info(record.corpus).version

    searcher = Searcher(registry)
    candidate = searcher.open(index_id)
    production = searcher.open(production_id) if production_id else None
    ctx = GuardContext(registry, record, model, candidate, production, Path(gold), queries, qrels, general, policy)
    for gate in registered_gates():
        ctx.results[gate.name] = gate.run(ctx)
    gates = require(list(ctx.results.values()), policy)

    verdict = FAIL if any(g.status == FAIL for g in gates) else PASS
    binding = ReportBinding(
        index_id=index_id, table_version=record.table_version or 0, model_digest=model.digest, policy_hash=policy.hash,
        alias=alias, alias_target=target, corpus=record.corpus, corpus_version=corpus_version, gold_digest=gold_hash,
        general_digests=general_digests,
    )
    runs = ctx.shared.get("runs", {})
    inputs = {"gold": str(gold), "gold_hash": gold_hash, "general": general_digests, "alias": alias,
              "production_index": production_id, "production_model": ctx.production_model,
              "forgetting_references": [{"model": r, "role": role}
                                        for r, role in ctx.shared.get("forgetting_references", [])],
              "gates": [g.name for g in registered_gates()], "policy": policy.to_dict(),
              "bridge": record.bridge.to_dict() if record.bridge else None}
    curves = {}
    for side in ("candidate", "production"):
        if f"{side}_run" in runs:
            curves[side] = recall_curve(runs["qrels"], runs[f"{side}_run"])
    stored = registry.reports.put(
        binding, model_ref=model.ref, verdict=verdict, inputs=inputs,
        gates=[g.to_dict() | {"evidence": _stored_evidence(g, curves)} for g in gates],
    )
    by_name = {g.name: g for g in gates}
    evidence = dict(by_name["domain"].evidence) if "domain" in by_name else {}
    evidence["recall_curves"] = curves
    evidence["general"] = by_name["forgetting"].evidence.get("benchmarks", []) if "forgetting" in by_name else []
    evidence["slices"] = by_name["slices"].evidence if "slices" in by_name else {}
    report = GuardReport(stored, gates, evidence)
    if html_dir is not None:
        from embedops.guards.report import write_html

        report.html = write_html(stored.to_dict(), evidence, Path(html_dir))
    return report


def _stored_evidence(gate: GateResult, curves: dict[str, dict]) -> dict[str, Any]:
    """A gate's evidence as the report keeps it: the domain gate's per-query deltas as sorted values
    to 0.001 point (what a histogram needs; the queries that lost most keep their ids and text) and
    its recall@k curves, so the dashboard draws the report's plots from the store."""
    evidence = {k: v for k, v in gate.evidence.items() if k != "per_query_delta"}
    if gate.name == "domain" and "per_query_delta" in gate.evidence:
        evidence["delta_values"] = sorted(round(d, 3) for d in gate.evidence["per_query_delta"].values())
        evidence["recall_curves"] = curves
    return evidence


def passing_report(registry: Registry, index_id: str, policy: Policy, alias: str = "production") -> StoredReport:
    """The report that authorises promoting ``index_id`` to ``alias`` now, or PromotionRefused
    saying why: the registry's promotion rule (:func:`embedops.registry.authorising_report`)."""
    return authorising_report(registry, index_id, alias, policy)
