"""Index integrity gate: counts, ids, NaN, norms and dimension, and, when the index has an ANN index,
its recall@10 against exact search measured now on a sample of queries with exactly the search
settings serving uses (never read from the build record). For an index that keeps a smaller
footprint (int8, sign bits, fewer dimensions) it also measures, when the same model's float32 index
of the same corpus version is ready, the recall@10 of its search against exact float32 search: what
the footprint changes in the top 10 (the domain gate judges what that costs on the gold set)."""

from __future__ import annotations

import numpy as np

from embedops.errors import UsageError
from embedops.guards.gate import FAIL, PASS, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy
from embedops.index import IndexReader, IndexStatus, IntegrityError, check_index_integrity
from embedops.index.ann import TableSearch
from embedops.index.codecs import codec_for
from embedops.index.integrity import recall_vs_float


def integrity_gate(index: IndexReader, corpus_table, policy: Policy, queries: np.ndarray | None = None,
                   float_index: IndexReader | None = None) -> GateResult:
    """``index``: the candidate, opened at its ready version; ``corpus_table``: its corpus now;
    ``queries``: query vectors for the ANN recall check (the gold queries; stored vectors when None);
    ``float_index``: for a smaller footprint, its model's float32 index of the same corpus version."""
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
    kept = ""
    if params.index.footprint != "float32":
        kept = f"; {params.index.footprint} vectors decode cleanly"
        if float_index is not None and queries is not None and len(queries):
            checks["vs_float32"] = {"index_id": float_index.index_id} | recall_vs_float(  # the reader's own search:
                index.searcher, float_index.searcher, queries[: policy.ann_sample])  # int8 codes already read
            kept += (f"; recall@10 vs exact float32 {checks['vs_float32']['recall@10_vs_float32']:.3f} "
                     f"({float_index.index_id})")
        else:
            checks["vs_float32"] = None
            kept += ("; recall vs float32 not measured (" + ("no float32 index of this model and corpus version)"
                                                           if float_index is None else "no query vectors)"))
    return GateResult("index_integrity", PASS, checks["rows"], None,
                      f"{checks['rows']} rows match the corpus; no NaN; max norm error {checks['max_norm_error']:.2g}"
                      + kept + ann_note, checks)


class IntegrityGate:
    """The integrity gate as a plug-in: ANN recall measured on the judged gold queries."""

    name, order = "index_integrity", 50

    def run(self, ctx: GuardContext) -> GateResult:
        judged = list(ctx.shared.get("runs", {}).get("queries", ctx.queries).values())
        vectors = ctx.candidate.encode(judged[: ctx.policy.ann_sample]) if judged else None
        return integrity_gate(ctx.candidate, ctx.registry.corpora.table(ctx.record.corpus), ctx.policy, queries=vectors,
                              float_index=_float_twin(ctx))


def _float_twin(ctx: GuardContext) -> IndexReader | None:
    """The newest ready float32 index of the candidate's model, corpus and corpus version (None for
    a float32 candidate, a bridge, or when there is none)."""
    rec = ctx.record
    if rec.bridge is not None or rec.settings.index.footprint == "float32":
        return None
    for other in reversed(ctx.registry.indexes.list()):
        if (other.status is IndexStatus.READY and other.built_from(rec.model_ref, rec.corpus)
                and other.settings.index.footprint == "float32"
                and other.settings.corpus_version == rec.settings.corpus_version):
            return IndexReader(ctx.registry.store.open_table(other.table_name, version=other.table_version), other)
    return None


register_gate(IntegrityGate())
