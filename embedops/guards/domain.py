"""Domain retrieval gate: candidate index vs the alias's current index on a gold set.

Per-query recall@k, nDCG@10 and MRR@10 (trec_eval via pytrec_eval) for both indexes; a paired
bootstrap over per-query differences of ``policy.metric`` (scipy.stats.bootstrap, BCa) gives the
mean lift and its confidence interval. Fails when the interval's lower bound is below
``-tolerance`` or the mean lift is below ``min_lift``; lists the queries that lost most.

Two rules, by what the candidate is. A new index of the model that serves (a re-embed, another
precision, a new corpus version) has no lift to show: it must be *no worse* (non-inferiority, the
lower bound at or above ``-tolerance``). A **fine-tune** (a model with a lineage parent) that would
replace the model serving exists only to lift: with ``fine_tunes_must_lift`` (the default) its
lower bound must also be **above 0**, else the gate refuses it as showing no measured lift. A fine-tune
that is merely no worse carries the risks of a new model (what the gold set does not cover) for no
gain a user can see; ``fine_tunes_must_lift = false`` accepts it.

Only evidence counts: the gold queries judged are those with a relevant document that both indexes
hold (:mod:`embedops.guards.evidence`). The gate fails, before searching, when fewer than
``min_gold_queries`` remain or more than ``max_missing_qrels`` of the relevant judgements name
absent documents. The interval's half-width (the smallest effect the gold set could detect at its
size) is reported beside the verdict.

When no index serves the alias yet there is nothing to regress against: the candidate must then
reach the policy's absolute ``domain_floor``; with no floor set the gate is skipped, which fails a
policy that requires it (a first promotion then needs a floor or an explicit override).
"""

from __future__ import annotations

import time

import numpy as np

from embedops.guards.evidence import GoldEvidence, gold_evidence
from embedops.guards.gate import FAIL, PASS, SKIP, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy
from embedops.guards.stats import paired_interval
from embedops.index import IndexReader
from embedops.metrics import evaluate, mean_metrics


def run_index(index: IndexReader, queries: dict[str, str], depth: int = 100):
    """The run (query id -> {doc id: score}) of ``index`` on ``queries`` and each query's latency in
    ms (encode + search, one query at a time, as serving does)."""
    run, latencies = {}, []
    for qid, text in queries.items():
        start = time.perf_counter()
        hits = index.search([text], depth)[0]
        latencies.append(1000 * (time.perf_counter() - start))
        run[qid] = {h.id: h.score for h in hits}
    return run, latencies


def recall_curve(qrels, run, ks=(1, 3, 5, 10, 20, 50, 100)) -> dict[int, float]:
    out = {}
    for k in ks:
        vals = []
        for q, rel in qrels.items():
            relevant = {d for d, r in rel.items() if r > 0}
            if q in run and relevant:
                top = [d for d, _ in sorted(run[q].items(), key=lambda x: -x[1])[:k]]
                vals.append(100 * len(relevant & set(top)) / len(relevant))
        out[k] = float(np.mean(vals)) if vals else 0.0
    return out


def domain_gate(candidate: IndexReader, production: IndexReader | None, queries: dict[str, str],
                qrels: dict[str, dict[str, int]], policy: Policy, *,
                must_lift: str | None = None) -> tuple[GateResult, dict]:
    """Returns the gate result and the runs/latencies (reused by the latency and slice gates and the
    plots). Only queries with a relevant document that both indexes hold are judged
    (:func:`~embedops.guards.evidence.gold_evidence`); too few of them, or too many judgements naming
    absent documents, fail the gate before anything is searched. ``must_lift``, when set, says why
    the candidate must show a lift (:func:`lift_required`): the interval's lower bound must then be
    above 0."""
    metric = policy.metric if not policy.metric.startswith("recall@") else f"recall@{policy.k}"
    present = candidate.doc_ids()
    if production is not None:
        present &= production.doc_ids()
    gold = gold_evidence(queries, qrels, present)
    thin = _too_thin(gold, candidate, production, policy)
    base = {"metric": metric} | gold.to_dict() | {"min_gold_queries": policy.min_gold_queries}
    if thin:
        return GateResult("domain", FAIL, None, None, thin, base), {}
    queries, qrels = gold.queries, gold.qrels
    cand_run, cand_lat = run_index(candidate, queries)
    cand = evaluate(qrels, cand_run, k=policy.k)
    extra = {"candidate_run": cand_run, "candidate_latency": cand_lat, "queries": queries, "qrels": qrels,
             "metric": metric}
    if production is None:
        means = mean_metrics(cand)
        value, floor = means.get(metric, 0.0), policy.domain_floor
        evidence = base | {"candidate": means, "queries": len(cand)}
        if floor is None:
            return GateResult("domain", SKIP, value, None,
                              "no index serves the alias yet and the policy sets no domain_floor: nothing to "
                              "compare with", evidence), extra
        status = PASS if value >= floor else FAIL
        return GateResult("domain", status, value, floor,
                          f"no index serves the alias yet: {metric} {value:.2f} is "
                          f"{'at or above' if status == PASS else 'below'} the policy's floor {floor:.2f} "
                          f"({_queries(len(cand))})", evidence), extra
    prod_run, prod_lat = run_index(production, queries)
    prod = evaluate(qrels, prod_run, k=policy.k)
    extra |= {"production_run": prod_run, "production_latency": prod_lat}
    qids = sorted(queries)  # a query an index answered with nothing scores 0 for it, never drops out
    deltas = np.array([cand.get(q, {}).get(metric, 0.0) - prod.get(q, {}).get(metric, 0.0) for q in qids])
    mean = float(deltas.mean())
    low, high = paired_interval(deltas, policy.confidence, policy.bootstrap_resamples)
    lost = sorted(zip(qids, deltas), key=lambda x: x[1])[:5]
    evidence = base | {
        "production": mean_metrics(prod), "candidate": mean_metrics(cand), "queries": len(qids),
        "mean_lift": mean, "ci_low": low, "ci_high": high, "half_width": (high - low) / 2,
        "confidence": policy.confidence, "rule": "lift" if must_lift else "non-inferiority",
        "per_query_delta": {q: float(d) for q, d in zip(qids, deltas)},
        "lost_most": [{"query_id": q, "query": queries[q], "delta": float(d)} for q, d in lost if d < 0],
    }
    extra["per_query_delta"] = evidence["per_query_delta"]
    on = f"{_queries(len(qids))}, smallest detectable effect +/-{(high - low) / 2:.2f}"
    if low < -policy.tolerance:
        status, reason = FAIL, (f"{metric} may regress: {policy.confidence:.0%} CI of the lift is [{_points(low)}, "
                                f"{_points(high)}] points, lower bound below -{policy.tolerance:g} ({on})")
    elif must_lift and low <= 0:
        status, reason = FAIL, (f"no measured lift: {must_lift}, so it must lift {metric}; the "
                                f"{policy.confidence:.0%} CI of the lift is [{_points(low)}, {_points(high)}] points, its "
                                f"lower bound not above 0 ({on}). Train on more or better pairs, or set "
                                "fine_tunes_must_lift = false in [guards] to ship a fine-tune that is no worse")
    elif mean < policy.min_lift:
        status, reason = FAIL, (f"mean {metric} lift {mean:+.2f} points is below the required "
                                f"{policy.min_lift:+.2f} ({on})")
    else:
        shown = ": a measured lift, as a fine-tune must show" if must_lift else ""
        status, reason = PASS, (f"mean {metric} lift {mean:+.2f} points, {policy.confidence:.0%} CI "
                                f"[{_points(low)}, {_points(high)}]{shown} ({on})")
    return GateResult("domain", status, mean, policy.min_lift, reason, evidence), extra


def lift_required(ctx: GuardContext) -> str | None:
    """Why the candidate must show a lift, or None when being no worse is enough: it must when the
    policy's ``fine_tunes_must_lift`` holds, its model is a fine-tune (has a lineage parent) and
    another model serves the alias now."""
    serving = ctx.production_model
    if not ctx.policy.fine_tunes_must_lift or ctx.model.parent is None or serving in (None, ctx.model.ref):
        return None
    return f"{ctx.model.ref} is a fine-tune (of {ctx.model.parent}) that would replace {serving}"


def _points(x: float) -> str:
    """A bound of the interval, to 0.01 point; one that would round to 0 keeps its first digit (a
    lower bound of +0.003 is a measured lift, and the reason must not read +0.00)."""
    if x == 0 or abs(x) >= 0.005:
        return f"{x:+.2f}"
    return f"{x:+.1g}"


def _queries(n: int) -> str:
    return f"{n} gold quer{'y' if n == 1 else 'ies'}"


def _too_thin(gold: GoldEvidence, candidate: IndexReader, production: IndexReader | None,
              policy: Policy) -> str | None:
    """Why the gold set cannot judge these indexes, or None when it can."""
    if gold.relevant_judgements == 0:
        return f"too little evidence: the gold set's {_queries(gold.gold_queries)} have no relevant judgement (score > 0)"
    if gold.missing_share > policy.max_missing_qrels:
        where = ", ".join(f"{r.index_id} (corpus {r.record.corpus!r} version {r.record.settings.corpus_version})"
                          for r in (candidate, production) if r is not None)
        return (f"{gold.missing_judgements} of {gold.relevant_judgements} relevant judgements "
                f"({gold.missing_share:.0%}) name documents absent from {where}, more than max_missing_qrels "
                f"{policy.max_missing_qrels:.0%}; first missing ids: {', '.join(gold.missing_examples)}. Is the "
                "gold set made for this corpus version?")
    if gold.judgeable < policy.min_gold_queries:
        return (f"too little evidence: {_queries(gold.judgeable)} {'has' if gold.judgeable == 1 else 'have'} a "
                f"relevant document in "
                f"{'both indexes' if production is not None else 'the index'} (of {gold.gold_queries} judged), "
                f"fewer than min_gold_queries {policy.min_gold_queries}")
    return None


class DomainGate:
    """The domain gate as a plug-in: leaves its runs in ``ctx.shared["runs"]`` for the slice and
    latency gates and the report's plots."""

    name, order = "domain", 10

    def run(self, ctx: GuardContext) -> GateResult:
        result, ctx.shared["runs"] = domain_gate(ctx.candidate, ctx.production, ctx.queries, ctx.qrels, ctx.policy,
                                                 must_lift=lift_required(ctx))
        return result


register_gate(DomainGate())
