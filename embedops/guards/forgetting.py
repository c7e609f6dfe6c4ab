"""Forgetting gate: the candidate model vs the original base model of its lineage on general
benchmarks — BEIR-format retrieval sets (nDCG@10) and STS TSV files (Spearman x 100). Fails if any
benchmark drops by more than ``policy.max_drop`` points. Embeddings come from each model's stored
ONNX fp32 export (the same encoder that serves), searched exactly with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from embedops.beir import read_beir, read_sts
from embedops.guards.gate import FAIL, PASS, SKIP, GateResult
from embedops.guards.policy import Policy
from embedops.metrics import evaluate, mean_metrics


def score_benchmark(encoder, path: Path) -> tuple[str, float]:
    """(metric name, value in points) of one general benchmark under ``encoder``."""
    if path.is_file():
        s1, s2, gold = read_sts(path)
        a, b = encoder.encode(s1), encoder.encode(s2)
        return "spearman", 100 * float(spearmanr((a * b).sum(axis=1), gold).statistic)
    beir = read_beir(path)
    doc_ids = list(beir.documents or {})
    d = encoder.encode([beir.documents[i] for i in doc_ids]) if doc_ids else np.zeros((0, 0), np.float32)
    q_ids = list(beir.queries)
    q = encoder.encode([beir.queries[i] for i in q_ids])
    scores = q @ d.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {qid: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(q_ids)}
    return "ndcg@10", mean_metrics(evaluate(beir.qrels, run))["ndcg@10"]


def forgetting_gate(candidate_encoder, base_encoder, benchmarks: list[Path], policy: Policy,
                    candidate_ref: str, base_ref: str) -> GateResult:
    if not benchmarks:
        return GateResult("forgetting", SKIP, None, policy.max_drop,
                          "no general benchmark given (--general): general ability was not checked")
    rows, worst = [], None
    for path in benchmarks:
        metric, cand = score_benchmark(candidate_encoder, path)
        _, base = score_benchmark(base_encoder, path) if candidate_ref != base_ref else (metric, cand)
        drop = base - cand
        rows.append({"benchmark": str(path), "metric": metric, "base": base, "candidate": cand, "drop": drop})
        worst = drop if worst is None else max(worst, drop)
    failing = [r for r in rows if r["drop"] > policy.max_drop]
    evidence = {"base_model": base_ref, "benchmarks": rows}
    if failing:
        r = failing[0]
        return GateResult("forgetting", FAIL, worst, policy.max_drop,
                          f"{Path(r['benchmark']).name}: {r['metric']} fell {r['drop']:.2f} points vs {base_ref} "
                          f"({r['base']:.2f} -> {r['candidate']:.2f}), more than {policy.max_drop}", evidence)
    return GateResult("forgetting", PASS, worst, policy.max_drop,
                      f"largest drop vs {base_ref}: {worst:.2f} points (allowed {policy.max_drop})", evidence)
