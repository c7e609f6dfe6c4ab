"""Shadow comparison: the same queries against production and a candidate index, side by side.

Reports overlap@k of the two result lists, their rank correlation (Kendall's tau from scipy over
the union of both top-k lists, an item missing from one list ranked just below its last), recall@k,
nDCG@10 and MRR@10 of both when qrels are given (trec_eval via pytrec_eval), the queries that moved
most, and per-query latency p50/p95 of each side (encode + search, measured alternately).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from embedops.metrics import evaluate, mean_metrics
from embedops.registry import Searcher


def rank_correlation(a: list[str], b: list[str]) -> float:
    union = list(dict.fromkeys(a + b))
    if len(union) < 2:
        return 1.0
    ra = [a.index(x) if x in a else len(a) for x in union]
    rb = [b.index(x) if x in b else len(b) for x in union]
    tau = kendalltau(ra, rb).statistic
    return 1.0 if np.isnan(tau) else float(tau)


@dataclass
class ShadowReport:
    alias: str
    production: str
    candidate: str
    k: int
    queries: int
    overlap_at_k: float
    rank_correlation: float
    latency_ms: dict[str, dict[str, float]]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    movers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_shadow(searcher: Searcher, candidate: str, queries: dict[str, str], *, qrels=None, k: int = 10,
               alias: str = "production", movers: int = 5) -> ShadowReport:
    prod = searcher.resolve(alias)
    # both indexes opened once (records checked ready once), then each query on each, one at a
    # time as serving answers them: the latency is encode + search, with no record read per query
    readers = {"production": searcher.open(prod), "candidate": searcher.open(candidate)}
    runs: dict[str, dict[str, dict[str, float]]] = {"production": {}, "candidate": {}}
    lat: dict[str, list[float]] = {"production": [], "candidate": []}
    overlaps, taus, per_query_overlap = [], [], {}
    for qid, text in queries.items():
        hits = {}
        for side, reader in readers.items():
            start = time.perf_counter()
            hits[side] = reader.search([text], k)[0]
            lat[side].append(1000 * (time.perf_counter() - start))
            runs[side][qid] = {h.id: h.score for h in hits[side]}
        pa_, ca = [h.id for h in hits["production"]], [h.id for h in hits["candidate"]]
        per_query_overlap[qid] = len(set(pa_) & set(ca)) / k
        overlaps.append(per_query_overlap[qid])
        taus.append(rank_correlation(pa_, ca))
    latency = {side: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95))}
               for side, v in lat.items() if v}
    report = ShadowReport(alias, prod.index_id, candidate, k, len(queries), float(np.mean(overlaps)),
                          float(np.mean(taus)), latency)
    if qrels:
        per = {side: evaluate(qrels, run, k) for side, run in runs.items()}
        report.metrics = {side: mean_metrics(m) for side, m in per.items()}
        deltas = sorted(
            ({"query_id": q, "query": queries[q], "production_ndcg@10": per["production"][q]["ndcg@10"],
              "candidate_ndcg@10": per["candidate"][q]["ndcg@10"],
              "delta": per["candidate"][q]["ndcg@10"] - per["production"][q]["ndcg@10"]}
             for q in per["candidate"]),
            key=lambda d: d["delta"],
        )
        losers = [d for d in deltas if d["delta"] < 0][:movers]
        gainers = [d for d in deltas[::-1] if d["delta"] > 0][:movers]
        report.movers = losers + gainers
    else:
        lowest = sorted(per_query_overlap.items(), key=lambda x: x[1])[:movers]
        report.movers = [{"query_id": q, "query": queries[q], f"overlap@{k}": o} for q, o in lowest]
    return report
