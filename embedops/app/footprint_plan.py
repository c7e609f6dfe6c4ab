"""``embedops index plan``: what each smaller footprint of an index would cost in retrieval quality,
measured on the user's gold set before anything is rebuilt (issue #36).

The index's stored float32 vectors are read once; each footprint (:mod:`embedops.index.footprints`:
int8, binary, binary rescored with int8 or float32, Matryoshka truncation to fewer dimensions) is
simulated from them exactly, and the gold queries, embedded once by the index's own model, are
ranked by each. Every row is compared with exact float32 search query by query: the mean loss and
the paired bootstrap interval the domain gate uses (:func:`embedops.guards.stats.paired_interval`),
under the policy's ``confidence``. A footprint is *within* ``max_loss`` when that interval's lower
bound is not below ``-max_loss`` points, the domain gate's own rule; the plan picks the one that
searches the fewest bytes per document among those within.

Simulated, not built: the figures are those of exact search over each footprint (no ANN index), so
they measure what the quantisation costs, not an ANN index's recall; latency and size on disk come
when a footprint is built as an index.

>>> plan = plan_footprints(registry, "scifact--minilm-v1--707bb951", Path("data/scifact"))  # doctest: +SKIP
>>> plan.chosen                                                                                # doctest: +SKIP
'binary+int8'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embedops.beir import read_gold
from embedops.errors import IndexStateError, UsageError
from embedops.guards.evidence import gold_evidence
from embedops.guards.stats import paired_interval
from embedops.index import IndexStatus
from embedops.index.footprints import DEFAULT_FOOTPRINTS, Footprint, footprint
from embedops.index.table import VECTOR, VECTOR_BATCH_ROWS
from embedops.metrics import evaluate, mean_metrics
from embedops.registry import Policy, Registry, Searcher

K = 10


@dataclass(frozen=True)
class FootprintRow:
    """One footprint's cost and quality against exact float32 search (points, x100)."""

    name: str
    searched_bytes: float  # per document, what the search reads
    kept_bytes: float  # per document, stored in all (rescoring vectors included)
    ndcg: float
    recall: float
    mean_loss: float  # float32's nDCG@10 minus this footprint's, mean over the judged queries
    ci_low: float  # the paired interval of this footprint minus float32 (negative: a loss)
    ci_high: float
    within: bool


@dataclass(frozen=True)
class FootprintPlan:
    index_id: str
    model_ref: str
    dim: int
    documents: int
    queries: int
    max_loss: float
    confidence: float
    rows: list[FootprintRow] = field(default_factory=list)
    chosen: str | None = None
    notes: list[str] = field(default_factory=list)
    build_command: str | None = None  # how to build the chosen footprint as an index (then guard it)

    def to_dict(self) -> dict:
        return asdict(self)


def _stored(registry: Registry, index_id: str) -> tuple[list[str], np.ndarray]:
    rec = registry.indexes.get(index_id)
    if rec.bridge is not None or rec.status is not IndexStatus.READY:
        raise IndexStateError(f"index {index_id} is {rec.status.value}: a plan reads a ready index's vectors")
    if rec.settings.index.vectors != "float32" or rec.settings.index.dims:
        raise UsageError(f"index {index_id} keeps {rec.settings.index.footprint} vectors: a plan starts from "
                         "a float32 index of all the model's dimensions")
    table = registry.store.open_table(rec.table_name, version=rec.table_version)
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for batch in table.search().select(["id", VECTOR]).limit(None).to_batches(VECTOR_BATCH_ROWS):
        dim = batch.schema.field(VECTOR).type.list_size
        ids += batch.column("id").to_pylist()
        parts.append(batch.column(VECTOR).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim))
    if not ids:
        raise UsageError(f"index {index_id} holds no documents to plan a footprint for")
    return ids, np.vstack(parts).astype(np.float32)


def _choices(names: list[str] | None, dims: list[int]) -> list[Footprint]:
    chosen = [footprint(n) for n in (names or DEFAULT_FOOTPRINTS)]
    chosen += [footprint("float32", d) for d in dims]
    return chosen


def plan_footprints(registry: Registry, index_id: str, gold: Path, *, names: list[str] | None = None,
                    dims: list[int] | None = None, max_loss: float = 1.0, policy: Policy | None = None,
                    progress: Callable[[str], None] | None = None) -> FootprintPlan:
    """Measure each footprint of index ``index_id`` on gold set ``gold`` (a BEIR directory): see the
    module docstring. ``dims``: Matryoshka truncations to add (float32, first N dimensions)."""
    if not np.isfinite(max_loss) or max_loss < 0:
        raise UsageError(f"--max-loss must be a number of points >= 0, got {max_loss}")
    policy = policy or Policy()
    footprints = _choices(names, list(dims or []))
    rec = registry.indexes.get(index_id)
    queries, qrels, _ = read_gold(gold)
    ids, vectors = _stored(registry, index_id)
    judged = gold_evidence(queries, qrels, set(ids))
    if judged.judgeable < policy.min_gold_queries:
        raise UsageError(f"too little evidence: {judged.judgeable} gold queries of {gold} have a relevant document "
                         f"in {index_id}, fewer than min_gold_queries {policy.min_gold_queries}")
    qids = sorted(judged.queries)
    query_vectors = Searcher(registry).open(index_id).encode([judged.queries[q] for q in qids])
    def measured(fp: Footprint) -> dict:
        if progress:
            progress(fp.name)
        rows, scores = fp.prepare(vectors).search(query_vectors, K)
        run = {q: {ids[j]: float(s) for j, s in zip(r, sc)} for q, r, sc in zip(qids, rows, scores)}
        return evaluate(judged.qrels, run, k=K)

    per_footprint = {fp: measured(fp) for fp in footprints}
    exact = footprint("float32")
    base = per_footprint[exact] if exact in per_footprint else measured(exact)
    out = [_row(fp, per_query, base, qids, vectors.shape[1], max_loss, policy)
           for fp, per_query in per_footprint.items()]
    within = [r for r in out if r.within]
    chosen = min(within, key=lambda r: (r.searched_bytes, r.kept_bytes)).name if within else None
    notes = []
    trained = [int(d) for d in registry.models.get(rec.model_ref).params.get("matryoshka_dims") or []]
    if dims and not trained:
        notes.append(f"{rec.model_ref} was not trained with a Matryoshka loss: the truncated rows show "
                     "what cutting its dimensions costs")
    picked = next((fp for fp in per_footprint if fp.name == chosen), None)
    command = None
    if picked is not None and picked.name != "float32":
        force = " --force-dims" if picked.dims and picked.dims not in trained else ""
        command = f"embedops index build {rec.model_ref} --corpus {rec.corpus} {picked.build_options}{force}"
    return FootprintPlan(index_id, rec.model_ref, vectors.shape[1], len(ids), len(qids), max_loss,
                         policy.confidence, out, chosen, notes, command)


def _row(fp: Footprint, per_query: dict, base: dict, qids: list[str], dim: int, max_loss: float,
         policy: Policy) -> FootprintRow:
    deltas = np.array([per_query.get(q, {}).get("ndcg@10", 0.0) - base[q]["ndcg@10"] for q in qids])
    low, high = paired_interval(deltas, policy.confidence, policy.bootstrap_resamples)
    means = mean_metrics(per_query)
    return FootprintRow(fp.name, fp.searched_bytes(dim), fp.kept_bytes(dim), means["ndcg@10"], means[f"recall@{K}"],
                        float(-deltas.mean()), low, high, bool(low >= -max_loss))
