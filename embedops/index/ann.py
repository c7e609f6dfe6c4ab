"""How an index table is searched, in one place: serving (:class:`~embedops.index.reader.IndexReader`,
behind :class:`~embedops.registry.Searcher`), shadow, mining, the guards and the ANN recall checks all build their LanceDB queries with
:func:`vector_query`, so the recall the integrity gate measures is the recall users get.

With an IVF-PQ index LanceDB probes ``nprobes`` partitions and re-ranks ``refine_factor x k``
candidates with the full vectors; without one it scans exactly and the settings do nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedops.errors import UsageError
from embedops.index.table import VECTOR, VECTOR_BATCH_ROWS, vector_batches


@dataclass(frozen=True)
class SearchSettings:
    """LanceDB ANN query settings used for every search of an index."""

    nprobes: int = 20
    refine_factor: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


SEARCH = SearchSettings()


def vector_query(tbl, vector: np.ndarray | list[np.ndarray], k: int, *, exact: bool = False, settings: SearchSettings = SEARCH):
    """The LanceDB query for the ``k`` nearest documents of ``vector`` (cosine): the serving query,
    or with ``exact`` the brute-force one that ANN recall is measured against. A list of vectors is
    one query, whose rows carry ``query_index``."""
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
    for batch in vector_batches(tbl, batch_rows):
        rows = batch.num_rows
        inside = picks[(picks >= offset) & (picks < offset + rows)] - offset
        if len(inside):
            dim = batch.schema.field(VECTOR).type.list_size
            flat = batch.column(VECTOR).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
            out.append(np.asarray(flat[inside], dtype=np.float32))
        offset += rows
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


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


def create_ann_index(tbl, dim: int, kind: str = "IVF_PQ", partitions: int | None = None,
                     sub_vectors: int | None = None) -> dict[str, Any]:
    """Build LanceDB's ``kind`` index on the vector column (cosine): ``partitions`` default sqrt(n);
    for IVF_PQ ``sub_vectors`` default dim/8 (the largest of dim/8, dim/4, 1 that divides dim)."""
    import warnings

    partitions = partitions or max(1, int(np.sqrt(tbl.count_rows())))
    options: dict[str, Any] = {"num_partitions": partitions}
    if kind in ("IVF_PQ", "IVF_HNSW_PQ"):
        sub_vectors = sub_vectors or next(s for s in (dim // 8, dim // 4, 1) if s and dim % s == 0)
        if dim % sub_vectors:
            raise UsageError(f"index setting 'sub_vectors': {sub_vectors} does not divide the {dim} dimensions")
        options["num_sub_vectors"] = sub_vectors
    with warnings.catch_warnings():  # LanceDB's notice about its newer create_index signature
        warnings.simplefilter("ignore", DeprecationWarning)
        tbl.create_index(metric="cosine", vector_column_name=VECTOR, index_type=kind, **options)
    built = {"type": kind, "partitions": partitions}
    return built | ({"sub_vectors": options["num_sub_vectors"]} if "num_sub_vectors" in options else {})
