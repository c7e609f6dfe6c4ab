"""Slice gate: a model can win on average and lose a whole kind of query.

Takes the domain gate's per-query differences (candidate - production, in points of the policy's
metric) and the slice of each gold query: named by the gold set (``slices.tsv`` beside the qrels, or
``metadata.slice`` in queries.jsonl; see :func:`embedops.beir.read_slices`), else derived by
clustering the gold queries with production's embeddings (scikit-learn's ``KMeans``, k-means++ with
10 restarts, fixed seed). Each slice of at least ``min_slice_queries`` queries gets the domain gate's
paired non-inferiority test (BCa bootstrap of the mean difference), with a Bonferroni correction for
the number of slices judged: each interval is at confidence ``1 - (1 - confidence) / m``, so the
chance that any slice's interval misses is at most ``1 - confidence`` (Bonferroni holds under any
dependence between slices). The gate fails naming the slice, its size, its interval and example
queries when a slice's lower bound is below ``-slice_tolerance``, even if the mean wins.

>>> deltas = {f"a{i}": 2.0 + i % 3 for i in range(30)} | {f"b{i}": -20.0 - i % 3 for i in range(30)}
>>> slices = {q: q[0] for q in deltas}
>>> g = slice_gate(deltas, {q: q for q in deltas}, slices, "example", Policy(min_slice_queries=20))
>>> g.status, g.evidence["slices"][1]["slice"]
('fail', 'b')
"""

from __future__ import annotations

import numpy as np

from embedops.beir import read_slices
from embedops.guards.gate import FAIL, PASS, SKIP, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy
from embedops.guards.stats import paired_interval


def derive_slices(vectors: np.ndarray, qids: list[str], policy: Policy) -> dict[str, str]:
    """Slices of the gold queries by k-means over their (production) embeddings: k is as many as fit
    two slices' worth of ``min_slice_queries`` each, between 2 and ``max_slices``; each slice is
    named by its number and the query nearest its centre."""
    from sklearn.cluster import KMeans

    k = max(2, min(policy.max_slices, len(qids) // (2 * policy.min_slice_queries)))
    k = min(k, len(qids))
    km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(np.asarray(vectors, dtype=np.float64))
    names = {}
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            nearest = members[np.argmin(((vectors[members] - km.cluster_centers_[c]) ** 2).sum(axis=1))]
            names[c] = f"cluster {c + 1}"
            names[c] += f" ~ {qids[nearest]}"
    return {q: names[int(label)] for q, label in zip(qids, km.labels_)}


def slice_centroids(vectors: np.ndarray, qids: list[str], slices: dict[str, str]) -> dict[str, list[float]]:
    """Each slice's centre: the normalised mean of its queries' (normalised) embeddings, to 4
    decimals. A guard report keeps them so that live queries can be put in the slice they are nearest
    to (:func:`embedops.app.live.live_summary`)."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    out = {}
    for name in sorted(set(slices.get(q, "(none)") for q in qids)):
        centre = v[[i for i, q in enumerate(qids) if slices.get(q, "(none)") == name]].mean(axis=0)
        out[name] = [round(float(x), 4) for x in centre / max(np.linalg.norm(centre), 1e-12)]
    return out


def slice_gate(per_query_delta: dict[str, float], queries: dict[str, str], slices: dict[str, str] | None,
               source: str, policy: Policy, metric: str = "ndcg@10") -> GateResult:
    """``per_query_delta``: the domain gate's judged queries; ``slices``: query id -> slice name
    (queries without one form the slice ``(none)``); ``source``: where the slices came from."""
    if not per_query_delta:
        return GateResult("slices", SKIP, None, -policy.slice_tolerance,
                          "no per-query lift to slice (no index serves the alias, or the domain gate did not judge)")
    slices = slices or {}
    groups: dict[str, list[str]] = {}
    for q in per_query_delta:
        groups.setdefault(slices.get(q, "(none)"), []).append(q)
    judged = {s: qs for s, qs in groups.items() if len(qs) >= policy.min_slice_queries}
    rows = []
    m = len(judged)
    confidence = 1 - (1 - policy.confidence) / max(m, 1)
    for name, qs in sorted(groups.items(), key=lambda x: (-len(x[1]), x[0])):
        d = np.array([per_query_delta[q] for q in qs])
        row = {"slice": name, "size": len(qs), "mean": float(d.mean()), "judged": name in judged,
               "examples": [queries[q] for q, _ in sorted(zip(qs, d), key=lambda x: x[1])[:3]]}
        if name in judged:
            row["ci_low"], row["ci_high"] = paired_interval(d, confidence, policy.bootstrap_resamples)
        rows.append(row)
    evidence = {"source": source, "metric": metric, "slices": rows, "judged": m, "confidence_each": confidence,
                "correction": f"Bonferroni over {m} slice{'s' if m != 1 else ''}", "min_slice_queries":
                policy.min_slice_queries, "slice_tolerance": policy.slice_tolerance}
    if not judged:
        return GateResult("slices", SKIP, None, -policy.slice_tolerance,
                          f"too little evidence: no slice has {policy.min_slice_queries} gold queries "
                          f"(largest {max(len(q) for q in groups.values())}; slices from {source})", evidence)
    worst = min((r for r in rows if r["judged"]), key=lambda r: r["ci_low"])
    if worst["ci_low"] < -policy.slice_tolerance:
        examples = "; ".join(repr(e[:60]) for e in worst["examples"])
        return GateResult("slices", FAIL, worst["ci_low"], -policy.slice_tolerance,
                          f"slice {worst['slice']!r} ({worst['size']} queries) may regress: mean {worst['mean']:+.2f}, "
                          f"{confidence:.1%} CI [{worst['ci_low']:+.2f}, {worst['ci_high']:+.2f}] ({evidence['correction']}), "
                          f"lower bound below -{policy.slice_tolerance:g}; e.g. {examples}", evidence)
    skipped = len(groups) - m
    return GateResult("slices", PASS, worst["ci_low"], -policy.slice_tolerance,
                      f"{m} slice{'s' if m != 1 else ''} judged ({source}; {evidence['correction']}); lowest bound "
                      f"{worst['ci_low']:+.2f} in {worst['slice']!r}"
                      + (f"; {skipped} smaller than {policy.min_slice_queries} not judged" if skipped else ""),
                      evidence)


class SliceGate:
    """The slice gate as a plug-in, on the domain gate's per-query lift: the gold set's own slices
    when it names them, else k-means over production's embeddings of the judged queries."""

    name, order = "slices", 20

    def run(self, ctx: GuardContext) -> GateResult:
        runs = ctx.shared.get("runs", {})
        deltas, queries = runs.get("per_query_delta") or {}, runs.get("queries", {})
        named = read_slices(ctx.gold)
        qids = list(deltas)
        vectors = ctx.production.encode([queries[q] for q in qids]) if deltas and ctx.production is not None else None
        if named is not None:
            slices, source = named
        elif vectors is not None:
            slices = derive_slices(vectors, qids, ctx.policy)
            source = f"k-means on {ctx.production.record.model_ref}'s embeddings"
        else:
            slices, source = {}, "none"
        result = slice_gate(deltas, queries, slices, source, ctx.policy, metric=runs.get("metric", ctx.policy.metric))
        if vectors is not None:  # where each slice lies, for live comparisons to be summed up per slice
            result.evidence |= {"centroids": slice_centroids(vectors, qids, slices),
                                "centroid_model": ctx.production.record.model_ref}
        return result


register_gate(SliceGate())
