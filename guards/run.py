"""Run the gates for a candidate index, store the report in the registry, and decide promotions.

>>> report = run_guards(reg, "scifact--minilm-v2--1a2b3c4d", gold=Path("../shared/data/scifact"),
...                     general=[Path("../shared/data/general-stsb/sts-test.tsv")])   # doctest: +SKIP
>>> report.verdict                                                                       # doctest: +SKIP
'pass'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.beir import read_qrels, read_queries
from embedops.errors import EmbedopsError, InputError, InputProblem
from embedops.guards.domain import domain_gate, recall_curve
from embedops.guards.forgetting import benchmark_hash, forgetting_gate
from embedops.guards.gate import FAIL, GateResult
from embedops.guards.integrity import integrity_gate
from embedops.guards.latency import latency_gate
from embedops.guards.parity import parity_gate
from embedops.guards.policy import Policy
from embedops.registry import Registry, StoredReport


class PromotionRefused(EmbedopsError):
    """No passing guard report exists for exactly what is being promoted."""


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


def read_gold(gold: Path) -> tuple[dict[str, str], dict[str, dict[str, int]], str]:
    """Queries and qrels from a BEIR directory (qrels/test.tsv) or a queries JSONL + sibling qrels."""
    if gold.is_dir():
        qrels_file = gold / "qrels" / "test.tsv"
        if not qrels_file.is_file():
            candidates = sorted((gold / "qrels").glob("*.tsv")) if (gold / "qrels").is_dir() else []
            if not candidates:
                raise InputError(InputProblem(str(gold), None, None, "no qrels/test.tsv in the gold directory"))
            qrels_file = candidates[0]
        queries_file = gold / "queries.jsonl"
    else:
        raise InputError(InputProblem(str(gold), None, None, "gold set must be a BEIR directory (queries.jsonl + qrels/)"))
    qrels = read_qrels(qrels_file)
    queries = read_queries(queries_file, only=set(qrels))
    h = hashlib.sha256(queries_file.read_bytes() + qrels_file.read_bytes()).hexdigest()[:16]
    return queries, qrels, h


def run_guards(registry: Registry, index_id: str, *, gold: Path, general: list[Path] | None = None,
               policy: Policy | None = None, alias: str = "production", html_dir: Path | None = None) -> GuardReport:
    from embedops.reembed import OnnxEncoder, Searcher, ensure_export

    policy = policy or Policy()
    general = [Path(g) for g in general or []]
    for g in general:
        if not g.exists():
            raise InputError(InputProblem(str(g), None, None, "no such general benchmark"))
    record = registry.indexes.get(index_id)
    model = registry.models.get(record.model_ref)
    queries, qrels, gold_hash = read_gold(Path(gold))
    current = registry.aliases.get(alias)
    production_id = current.value if current and current.value != index_id else None

    searcher = Searcher(registry)
    gates: list[GateResult] = []
    domain, runs = domain_gate(searcher, index_id, production_id, queries, qrels, policy)
    gates.append(domain)

    base_ref = registry.lineage_root(model.ref)
    _, cand_path = ensure_export(registry, model.ref, "fp32")
    _, base_path = ensure_export(registry, base_ref, "fp32")
    forgetting = forgetting_gate(OnnxEncoder(cand_path), OnnxEncoder(base_path), general, policy, model.ref, base_ref)
    gates.append(forgetting)
    gates.append(parity_gate(registry, record, policy, texts=None))
    gates.append(integrity_gate(registry, index_id, policy))
    gates.append(latency_gate(runs["candidate_latency"], runs.get("production_latency"), policy))

    verdict = FAIL if any(g.status == FAIL for g in gates) else "pass"
    inputs = {"gold": str(gold), "gold_hash": gold_hash, "general": {str(g): benchmark_hash(g) for g in general},
              "alias": alias, "production_index": production_id, "base_model": base_ref, "policy": policy.to_dict()}
    stored = registry.reports.put(
        index_id=index_id, model_ref=model.ref, model_digest=model.digest, table_version=record.table_version or 0,
        policy_hash=policy.hash, verdict=verdict, inputs=inputs,
        gates=[g.to_dict() | {"evidence": {k: v for k, v in g.evidence.items() if k != "per_query_delta"}} for g in gates],
    )
    evidence = dict(domain.evidence)
    curves = {"candidate": recall_curve(qrels, runs["candidate_run"])}
    if "production_run" in runs:
        curves["production"] = recall_curve(qrels, runs["production_run"])
    evidence["recall_curves"] = curves
    evidence["general"] = forgetting.evidence.get("benchmarks", [])
    report = GuardReport(stored, gates, evidence)
    if html_dir is not None:
        from embedops.guards.report import write_html

        report.html = write_html(stored.to_dict(), evidence, Path(html_dir))
    return report


def passing_report(registry: Registry, index_id: str, policy: Policy) -> StoredReport:
    """The passing report that allows promoting ``index_id`` now, or PromotionRefused saying why.

    It must be bound to this index's current table version, its model's checksum digest and the
    current policy."""
    record = registry.indexes.get(index_id)
    model = registry.models.get(record.model_ref)
    reports = registry.reports.for_index(index_id)
    if not reports:
        raise PromotionRefused(f"no guard report for {index_id}: run 'embedops guard {index_id} --gold DIR "
                               "--general DIR|TSV' first, or promote with --force --reason")
    for r in reversed(reports):
        if (r.verdict == "pass" and r.table_version == (record.table_version or 0)
                and r.model_digest == model.digest and r.policy_hash == policy.hash):
            return r
    last = reports[-1]
    why = ("its latest report failed: " + ", ".join(g["name"] for g in last.gates if g["status"] == FAIL)
           if last.verdict != "pass" else
           "the passing report was made for table version %s / model digest %s / policy %s, but the index is now at "
           "table version %s / digest %s / policy %s" % (last.table_version, last.model_digest[:12], last.policy_hash,
                                                         record.table_version, model.digest[:12], policy.hash))
    raise PromotionRefused(f"cannot promote {index_id}: {why}. Re-run 'embedops guard', or use --force --reason")
