"""How an index table is searched, in one place: serving (:class:`~embedops.reembed.search.Searcher`),
shadow, the guards and the ANN recall checks all build their LanceDB queries with
:func:`vector_query`, so the recall the integrity gate measures is the recall users get.

With an IVF-PQ index LanceDB probes ``nprobes`` partitions and re-ranks ``refine_factor x k``
candidates with the full vectors; without one it scans exactly and the settings do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

VECTOR = "vector"
VECTOR_BATCH_ROWS = 8192  # rows per batch when scanning the vector column: memory stays one batch (12 MB at 384-d)


@dataclass(frozen=True)
class SearchSettings:
    """LanceDB ANN query settings used for every search of an index."""

    nprobes: int = 20
    refine_factor: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


SEARCH = SearchSettings()


def vector_query(tbl, vector: np.ndarray, k: int, *, exact: bool = False, settings: SearchSettings = SEARCH):
    """The LanceDB query for the ``k`` nearest documents of ``vector`` (cosine): the serving query,
    or with ``exact`` the brute-force one that ANN recall is measured against."""
    q = tbl.search(vector, vector_column_name=VECTOR).metric("cosine")
    q = q.bypass_vector_index() if exact else q.nprobes(settings.nprobes).refine_factor(settings.refine_factor)
    return q.select(["id", "_distance"]).limit(k)


def has_ann_index(tbl) -> bool:
    return any(VECTOR in getattr(i, "columns", []) for i in tbl.list_indices())


def sample_vectors(tbl, size: int, seed: int = 0, batch_rows: int = VECTOR_BATCH_ROWS) -> np.ndarray:
    """``size`` stored vectors picked at random, read batch by batch: memory stays bounded by one
    batch plus the sample, whatever the table's size."""
    n = tbl.count_rows()
    picks = np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
    out: list[np.ndarray] = []
    offset = 0
    for batch in _vector_batches(tbl, batch_rows):
        rows = batch.num_rows
        inside = picks[(picks >= offset) & (picks < offset + rows)] - offset
        if len(inside):
            dim = batch.schema.field(VECTOR).type.list_size
            flat = batch.column(VECTOR).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
            out.append(np.asarray(flat[inside], dtype=np.float32))
        offset += rows
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _vector_batches(tbl, batch_rows: int) -> Iterator:
    yield from tbl.search().select([VECTOR]).limit(None).to_batches(batch_rows)


def measure_ann_recall(tbl, queries: np.ndarray, k: int = 10, settings: SearchSettings = SEARCH) -> dict[str, Any]:
    """Recall@k of the serving query against exact search, averaged over ``queries`` (vectors)."""
    recalls = []
    for q in queries:
        exact = vector_query(tbl, q, k, exact=True, settings=settings).to_arrow().column("id").to_pylist()
        approx = vector_query(tbl, q, k, settings=settings).to_arrow().column("id").to_pylist()
        if exact:
            recalls.append(len(set(exact) & set(approx)) / len(exact))
    return {f"recall@{k}_vs_exact": float(np.mean(recalls)) if recalls else 0.0, "sample": len(recalls),
            "search": settings.to_dict()}
