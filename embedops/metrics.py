"""Retrieval metrics, computed by trec_eval through ``pytrec_eval`` (pytrec-eval-terrier): the
same implementation BEIR and MTEB report with, so figures are comparable with published ones."""

from __future__ import annotations

import numpy as np

RUN = dict[str, dict[str, float]]
QRELS = dict[str, dict[str, int]]


def evaluate(qrels: QRELS, run: RUN, k: int = 10) -> dict[str, dict[str, float]]:
    """Per-query ``ndcg@10``, ``recall@k`` and ``mrr@10`` (x100) for the queries that have qrels.

    ``run`` maps query id -> {doc id: score}. MRR@10 is trec_eval's reciprocal rank on the run cut
    to its top 10.
    """
    import pytrec_eval

    judged = {q: r for q, r in run.items() if q in qrels}
    if not judged:
        return {}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", f"recall.{k}"})
    scores = ev.evaluate(judged)
    top10 = {q: dict(sorted(r.items(), key=lambda x: -x[1])[:10]) for q, r in judged.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    return {
        q: {"ndcg@10": 100 * s["ndcg_cut_10"], f"recall@{k}": 100 * s[f"recall_{k}"],
            "mrr@10": 100 * rr[q]["recip_rank"]}
        for q, s in scores.items()
    }


def mean_metrics(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    if not per_query:
        return {}
    names = next(iter(per_query.values())).keys()
    return {n: float(np.mean([m[n] for m in per_query.values()])) for n in names}
