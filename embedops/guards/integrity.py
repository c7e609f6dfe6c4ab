"""Index integrity gate: counts, ids, NaN, norms and dimension, and, when the index has an ANN index,
its recall@10 against exact search measured now on a sample of queries with exactly the search
settings serving uses (never read from the build record)."""

from __future__ import annotations

import numpy as np

from embedops.errors import UsageError
from embedops.guards.gate import FAIL, PASS, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy
from embedops.index import IndexReader, IntegrityError, check_index_integrity
from embedops.index.ann import TableSearch
from embedops.index.codecs import codec_for


def integrity_gate(index: IndexReader, corpus_table, policy: Policy, queries: np.ndarray | None = None) -> GateResult:
    """``index``: the candidate, opened at its ready version; ``corpus_table``: its corpus now;
    ``queries``: query vectors for the ANN recall check (the gold queries; stored vectors when None)."""
    params = index.record.settings
    dim = index.encoder.dim if index.encoder is not None else int(params.dim or 0)
    try:
        search = TableSearch(index.table, codec_for(params.index, dim, params.calibration), params.index.search)
        checks = check_index_integrity(index.index_id, search, corpus_table, queries=queries, sample=policy.ann_sample)
    except (IntegrityError, UsageError) as exc:
        return GateResult("index_integrity", FAIL, None, None, str(exc))
    ann = checks.get("ann")
    if ann:
        recall = ann["recall@10_vs_exact"]
        if recall < policy.ann_min_recall:
            return GateResult("index_integrity", FAIL, recall, policy.ann_min_recall,
                              f"ANN recall@10 vs exact {recall:.3f} < {policy.ann_min_recall}", checks)
    ann_note = (f"; ANN recall@10 vs exact {ann['recall@10_vs_exact']:.3f} on {ann['sample']} queries (measured now)"
                if ann else "")
    kept = "" if params.index.vectors == "float32" else f"; {params.index.footprint} vectors decode cleanly"
    return GateResult("index_integrity", PASS, checks["rows"], None,
                      f"{checks['rows']} rows match the corpus; no NaN; max norm error {checks['max_norm_error']:.2g}"
                      + kept + ann_note, checks)


class IntegrityGate:
    """The integrity gate as a plug-in: ANN recall measured on the judged gold queries."""

    name, order = "index_integrity", 50

    def run(self, ctx: GuardContext) -> GateResult:
        judged = list(ctx.shared.get("runs", {}).get("queries", ctx.queries).values())
        vectors = ctx.candidate.encode(judged[: ctx.policy.ann_sample]) if judged else None
        return integrity_gate(ctx.candidate, ctx.registry.corpora.table(ctx.record.corpus), ctx.policy, queries=vectors)


register_gate(IntegrityGate())
