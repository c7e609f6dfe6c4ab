"""Forgetting gate: the candidate model vs what it replaces on general benchmarks — BEIR-format
retrieval sets (nDCG@10) and STS TSV files (Spearman x 100). Fails if any benchmark drops by more
than ``policy.max_drop`` points against any reference model.

The references (:func:`forgetting_references`) are the model behind the alias now (production's)
and, when the candidate has lineage, the lineage's root; a model registered without ``--parent`` is
thus still judged against production's model, and a model is never compared with itself. With no
reference at all (a first promotion of an original model) the gate is skipped, which fails a policy
that requires it.

Evidence first: an STS file needs ``min_sts_pairs`` pairs with scores that vary; a BEIR set needs
``min_general_queries`` queries with a relevant document in its corpus; a score that comes out NaN
or constant across queries (a collapsed model, a degenerate file) fails naming the file. Embeddings
come from each model's stored ONNX fp32 export (the same encoder that serves), searched exactly with
numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from embedops.beir import read_beir, read_sts
from embedops.data import general_path
from embedops.guards.gate import FAIL, PASS, SKIP, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy
from embedops.metrics import evaluate


class DegenerateBenchmark(Exception):
    """A general benchmark that cannot judge: too small, constant gold scores, or a NaN or constant
    score under a model. The message names the file."""


@dataclass(frozen=True)
class GeneralSet:
    """One general benchmark, read and checked: STS pairs, or BEIR queries judged on its corpus."""

    path: Path
    kind: str  # "sts" or "beir"
    size: int  # STS pairs, or BEIR queries with a relevant document in the corpus
    data: tuple

    @property
    def metric(self) -> str:
        return "spearman" if self.kind == "sts" else "ndcg@10"


def read_general(path: Path, policy: Policy) -> GeneralSet:
    """``path`` (or a ``bundled:`` set, :mod:`embedops.data`) read as a general benchmark, or
    :class:`DegenerateBenchmark` saying why it cannot judge."""
    path = general_path(path)
    if path.is_file():
        s1, s2, gold = read_sts(path)
        if len(gold) < policy.min_sts_pairs:
            raise DegenerateBenchmark(f"{path}: {len(gold)} STS pairs, fewer than min_sts_pairs {policy.min_sts_pairs}")
        if not np.all(np.isfinite(gold)) or np.ptp(gold) == 0:
            raise DegenerateBenchmark(f"{path}: the gold scores are constant or not finite: a correlation with "
                                      "them means nothing")
        return GeneralSet(path, "sts", len(gold), (s1, s2, gold))
    beir = read_beir(path)
    docs = beir.documents or {}
    qrels = {q: {d: r for d, r in rel.items() if d in docs} for q, rel in beir.qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if q in beir.queries and any(r > 0 for r in rel.values())}
    if len(qrels) < policy.min_general_queries:
        raise DegenerateBenchmark(f"{path}: {len(qrels)} queries have a relevant document in its corpus, fewer "
                                  f"than min_general_queries {policy.min_general_queries}")
    return GeneralSet(path, "beir", len(qrels), (docs, {q: beir.queries[q] for q in qrels}, qrels))


def score_benchmark(encoder, general: GeneralSet, model_ref: str) -> float:
    """``general``'s score in points under ``encoder``, or :class:`DegenerateBenchmark` when it is
    NaN or the same for every query."""
    if general.kind == "sts":
        s1, s2, gold = general.data
        sims = (encoder.encode(s1) * encoder.encode(s2)).sum(axis=1)
        value = 100 * float(spearmanr(sims, gold).statistic)
        if not np.isfinite(value):
            raise DegenerateBenchmark(f"{general.path}: Spearman under {model_ref} is NaN (its similarities are "
                                      "constant: a collapsed model)")
        return value
    docs, queries, qrels = general.data
    doc_ids = list(docs)
    d = encoder.encode([docs[i] for i in doc_ids])
    q_ids = list(queries)
    scores = encoder.encode([queries[i] for i in q_ids]) @ d.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {qid: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(q_ids)}
    per_query = np.array([m["ndcg@10"] for m in evaluate(qrels, run).values()])
    if not len(per_query) or not np.all(np.isfinite(per_query)) or np.ptp(per_query) == 0:
        raise DegenerateBenchmark(f"{general.path}: nDCG@10 under {model_ref} is NaN or the same for every query")
    return float(per_query.mean())


def forgetting_references(candidate_ref: str, production_ref: str | None, root_ref: str) -> list[tuple[str, str]]:
    """``(model ref, role)`` of each model the candidate is judged against: production's model, then
    the lineage's root, each once and never the candidate itself.

    >>> forgetting_references("damaged@1", "minilm@1", "damaged@1")
    [('minilm@1', "production's model")]
    >>> forgetting_references("minilm@3", "minilm@2", "minilm@1")
    [('minilm@2', "production's model"), ('minilm@1', 'lineage root')]
    """
    out: list[tuple[str, str]] = []
    for ref, role in ((production_ref, "production's model"), (root_ref, "lineage root")):
        if ref and ref != candidate_ref and ref not in [r for r, _ in out]:
            out.append((ref, role))
    return out


def forgetting_gate(candidate_ref: str, candidate_encoder, references: list[tuple[str, str, object]],
                    benchmarks: list[Path], policy: Policy, *, production_ref: str | None = None) -> GateResult:
    """``references``: ``(model ref, role, encoder)`` from :func:`forgetting_references`;
    ``production_ref``: the model behind the alias now (None: nothing serves it)."""
    if not benchmarks:
        return GateResult("forgetting", SKIP, None, policy.max_drop,
                          "no general benchmark given (--general): general ability was not checked")
    try:
        sets = [read_general(p, policy) for p in benchmarks]
        cand = {g.path: score_benchmark(candidate_encoder, g, candidate_ref) for g in sets}
        rows = [{"benchmark": str(g.path), "metric": g.metric, "size": g.size, "reference": ref, "role": role,
                 "base": score_benchmark(enc, g, ref), "candidate": cand[g.path]}
                for ref, role, enc in references for g in sets]
    except DegenerateBenchmark as exc:
        return GateResult("forgetting", FAIL, None, policy.max_drop, f"too little evidence: {exc}",
                          {"candidate_model": candidate_ref})
    evidence = {"candidate_model": candidate_ref, "references": [{"model": r, "role": role} for r, role, _ in references],
                "benchmarks": rows, "sizes": {str(g.path): g.size for g in sets}}
    if not references:
        scores = ", ".join(f"{g.path.name} {cand[g.path]:.2f}" for g in sets)
        evidence["benchmarks"] = [{"benchmark": str(g.path), "metric": g.metric, "size": g.size, "reference": None,
                                   "role": None, "base": None, "candidate": cand[g.path]} for g in sets]
        if production_ref == candidate_ref:
            return GateResult("forgetting", PASS, 0.0, policy.max_drop,
                              f"{candidate_ref} is production's model and has no lineage: it replaces itself, "
                              f"nothing to forget ({scores})", evidence)
        return GateResult("forgetting", SKIP, None, policy.max_drop,
                          f"nothing to compare {candidate_ref} with: no index serves the alias and it has no parent "
                          f"({scores})", evidence)
    for r in rows:
        r["drop"] = r["base"] - r["candidate"]
    worst = max(r["drop"] for r in rows)
    failing = [r for r in rows if r["drop"] > policy.max_drop]
    against = ", ".join(f"{r} ({role})" for r, role, _ in references)
    if failing:
        r = failing[0]
        return GateResult("forgetting", FAIL, worst, policy.max_drop,
                          f"{Path(r['benchmark']).name}: {r['metric']} fell {r['drop']:.2f} points vs {r['reference']} "
                          f"({r['role']}; {r['base']:.2f} -> {r['candidate']:.2f}), more than {policy.max_drop:g}",
                          evidence)
    sizes = ", ".join(f"{g.path.name}: {g.size} {'pairs' if g.kind == 'sts' else 'queries'}" for g in sets)
    return GateResult("forgetting", PASS, worst, policy.max_drop,
                      f"largest drop vs {against}: {worst:.2f} points (allowed {policy.max_drop:g}; {sizes})",
                      evidence)


class ForgettingGate:
    """The forgetting gate as a plug-in: the candidate's model against production's model and its
    lineage root (:func:`forgetting_references`), each through its stored fp32 export."""

    name, order = "forgetting", 30

    def run(self, ctx: GuardContext) -> GateResult:
        from embedops.registry import open_encoder

        references = forgetting_references(ctx.model.ref, ctx.production_model, ctx.registry.lineage_root(ctx.model.ref))
        ctx.shared["forgetting_references"] = references
        return forgetting_gate(ctx.model.ref, open_encoder(ctx.registry, ctx.model.ref, "fp32"),
                               [(ref, role, open_encoder(ctx.registry, ref, "fp32")) for ref, role in references],
                               ctx.general, ctx.policy, production_ref=ctx.production_model)


register_gate(ForgettingGate())
