"""Bridge lift gate: the share of the full re-embed's lift that a bridge keeps (issue #35).

A bridge (an adapter id: the new model's queries mapped into the old index's space) gets part of
what fine-tuning gained, not all of it: no map of the queries moves the document vectors. So when
the candidate is a bridge, this gate scores the judged gold queries three ways over the same
documents: production (the index the alias serves), the bridge, and the **full re-embed** (the new
model's queries over the new model's own document vectors). The share kept is
``(bridge - production) / (full - production)`` of the policy's metric.

The full re-embed is read from a ready index of the new model on the same corpus when there is one
(the whole corpus). Otherwise it is measured on a sample: every relevant document of the judged
queries plus :data:`SAMPLE` others of the old index, embedded by the new model, with production and
the bridge scored over the stored vectors of the same documents (a smaller corpus is easier, so the
three figures are comparable with each other, not with the domain gate's).

It informs, it does not judge: it passes with the figure, and is skipped for an index, with nothing
serving the alias, or when the full re-embed does not beat production (there is no lift to share).
A user reads it to decide whether to wait for the full index.

It also measures the **progressive bridge** on the same runs: with a share of the documents
re-embedded (each document in or out by a hash of its id, so 25% is inside 50%), those answered
from the full run, the rest from the bridge's run with their scores put on the new space's scale
by the adapter's calibration line, merged by score. ``progressive_from`` is the smallest measured
share from which every measured merge is at least the plain bridge: a server serving this bridge
answers progressively once the rebuild has reached it, and from the plain bridge before
(:mod:`embedops.registry.progressive`). None when no share does, or the adapter has no calibration.
"""

from __future__ import annotations

import numpy as np

from embedops.corpus import doc_text
from embedops.guards.domain import run_index
from embedops.guards.gate import PASS, SKIP, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.metrics import evaluate, mean_metrics
from embedops.records import sql_in
from embedops.registry import Searcher, open_encoder
from embedops.registry.progressive import PROGRESSIVE_SHARES, reembedded_by

SAMPLE = 2000  # documents besides the relevant ones, when no full index of the new model exists
_DEPTH = 100
_CHUNK = 256


def _rank(queries: np.ndarray, docs: np.ndarray, ids: list[str], qids: list[str]) -> dict[str, dict[str, float]]:
    """Exact cosine ranking of ``docs`` for each query: the run (query id -> {doc id: score})."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    d = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
    scores = q @ d.T
    top = np.argsort(-scores, axis=1)[:, :_DEPTH]
    return {qid: {ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(qids)}


def _sample_runs(ctx: GuardContext, queries: dict[str, str], qrels: dict[str, dict[str, int]], encoder) -> tuple[dict, str]:
    """The three runs over a sample of the old index's documents embedded by the new model."""
    held = ctx.candidate.doc_ids() & ctx.production.doc_ids()
    relevant = sorted({d for rel in qrels.values() for d, r in rel.items() if r > 0} & held)
    others = sorted(held - set(relevant))
    picked = np.random.default_rng(0).choice(len(others), size=min(SAMPLE, len(others)), replace=False)
    ids = relevant + [others[i] for i in sorted(picked)]
    table = ctx.registry.corpora.table(ctx.record.corpus)
    texts: dict[str, str] = {}
    for start in range(0, len(ids), 1000):
        rows = table.search().where(sql_in("id", ids[start : start + 1000])).select(["id", "title", "text"]) \
            .limit(None).to_arrow().to_pylist()
        texts.update((r["id"], doc_text(r["title"], r["text"])) for r in rows)
    ids = [i for i in ids if i in texts]
    old, prod = ctx.candidate.stored_vectors(ids), ctx.production.stored_vectors(ids)
    new = np.vstack([encoder.encode([texts[i] for i in ids[s : s + _CHUNK]]) for s in range(0, len(ids), _CHUNK)])
    qids = sorted(queries)
    qtexts = [queries[q] for q in qids]
    runs = {"production": _rank(ctx.production.encode(qtexts), np.vstack([prod[i] for i in ids]), ids, qids),
            "bridge": _rank(ctx.candidate.encode(qtexts), np.vstack([old[i] for i in ids]), ids, qids),
            "full": _rank(encoder.encode(qtexts), new, ids, qids)}
    return runs, f"a sample of {len(ids)} documents ({len(relevant)} relevant) embedded by {ctx.model.ref}"


def bridge_lift(ctx: GuardContext) -> GateResult:
    """The share of the full re-embed's lift the bridge keeps (see the module docstring)."""
    name = BridgeLiftGate.name
    bridge = ctx.record.bridge
    runs = ctx.shared.get("runs", {})
    if bridge is None:
        return GateResult(name, SKIP, None, None, "the candidate is an index, not a bridge")
    if ctx.production is None or "production_run" not in runs:
        return GateResult(name, SKIP, None, None, "no production run to measure a lift from")
    queries, qrels, metric = runs["queries"], runs["qrels"], runs["metric"]
    full = ctx.registry.indexes.find_ready(ctx.model.ref, ctx.record.corpus)
    if full is not None:
        full_run, _ = run_index(Searcher(ctx.registry).open(full.index_id), queries, _DEPTH)
        measured = {"production": runs["production_run"], "bridge": runs["candidate_run"], "full": full_run}
        where = f"the whole corpus, full re-embed {full.index_id}"
    else:
        measured, where = _sample_runs(ctx, queries, qrels, open_encoder(ctx.registry, ctx.model.ref, "fp32"))
    means = {side: mean_metrics(evaluate(qrels, run, k=ctx.policy.k)).get(metric, 0.0) for side, run in measured.items()}
    gained, kept = means["full"] - means["production"], means["bridge"] - means["production"]
    evidence = {"metric": metric, "means": means, "measured_on": where, "queries": len(queries),
                "full_index": full.index_id if full else None}
    figures = f"{metric}: production {means['production']:.2f}, bridge {means['bridge']:.2f}, full {means['full']:.2f}"
    if gained <= 0:
        return GateResult(name, SKIP, None, None, f"the full re-embed does not beat production ({figures}; on "
                          f"{where}): no lift to share", evidence)
    share = kept / gained
    progressive = _progressive(ctx, measured, qrels, metric, means["bridge"])
    evidence |= {"share": share, "progressive": progressive}
    start = progressive.get("progressive_from")
    then = (f"; progressive from {start:.0%} of the rebuild" if start is not None
            else f"; not progressive: {progressive['why']}")
    return GateResult(name, PASS, share, None, f"keeps {share:.0%} of the full re-embed's lift ({kept:+.2f} of "
                      f"{gained:+.2f}; {figures}; on {where}){then}", evidence)


def _progressive(ctx: GuardContext, runs: dict, qrels: dict, metric: str, bridge_mean: float) -> dict:
    """The merge of the full run and the calibrated bridge run at each of :data:`PROGRESSIVE_SHARES`
    (see the module docstring), and the share to serve it from."""
    calibration = ctx.registry.adapters.get(ctx.record.bridge.adapter_id).meta.get("fit", {}).get("calibration")
    if not calibration:
        return {"progressive_from": None, "why": "the adapter was fitted without a score calibration"}
    scale, shift = calibration["scale"], calibration["shift"]
    means = {}
    for share in PROGRESSIVE_SHARES:
        fresh = reembedded_by(share)
        merged = {q: {d: s for d, s in runs["full"].get(q, {}).items() if fresh(d)}
                  | {d: scale * s + shift for d, s in run.items() if not fresh(d)}
                  for q, run in runs["bridge"].items()}
        means[share] = mean_metrics(evaluate(qrels, merged, k=ctx.policy.k)).get(metric, 0.0)
    start = None
    for share in sorted(means, reverse=True):  # the smallest share from which every merge holds up
        if means[share] < bridge_mean:
            break
        start = share
    why = None if start is not None else f"at {max(means):.0%} of the rebuild the merge is below the plain bridge"
    return {"means": {f"{s:g}": m for s, m in means.items()}, "bridge": bridge_mean, "progressive_from": start,
            "why": why}


class BridgeLiftGate:
    """The bridge lift gate as a plug-in: after the domain gate, whose judged queries it reuses."""

    name, order = "bridge_lift", 15

    def run(self, ctx: GuardContext) -> GateResult:
        return bridge_lift(ctx)


register_gate(BridgeLiftGate())
