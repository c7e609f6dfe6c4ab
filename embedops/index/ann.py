"""How an index table is searched, in one place: serving (:class:`~embedops.index.reader.IndexReader`,
behind :class:`~embedops.registry.Searcher`), shadow, mining, the guards and the ANN recall checks
all search through :func:`table_search`, so every reader honours the index's stored kind and the
recall the integrity gate measures is the recall users get.

- float32: LanceDB's cosine search (:func:`vector_query`). With an IVF index LanceDB probes
  ``nprobes`` partitions and re-ranks ``refine_factor x k`` candidates with the full vectors;
  without one it scans exactly and the settings do nothing.
- binary: LanceDB's hamming search over the sign bits (an IVF_FLAT index above the threshold) for
  ``RESCORE x k`` candidates, re-ranked by the cosine of the float32 query with each candidate's
  rescoring vector (int8 codes decoded, or float32), read in the same query.
- int8: LanceDB does not search int8 columns, so the codes are read once into memory (one byte a
  dimension) and scanned exactly, a block of rows at a time.

Scores are cosines (for binary without rescoring, that of the sign vectors: 1 - 2 hamming / dim).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from embedops.errors import UsageError
from embedops.index.codecs import RESCORE, VECTOR, VectorCodec, sign_bits
from embedops.index.settings import IndexSettings, SearchSettings
from embedops.index.table import VECTOR_BATCH_ROWS

SEARCH = SearchSettings()
RESCORE_DEPTH = 4  # binary: candidates re-ranked per result (sentence-transformers' rescore_multiplier)
_SCAN_ROWS = 8_192  # int8: rows converted per block of a scan (12 MB at 384-d: 4x faster than 65,536 here)
Ranked = list[list[tuple[str, float]]]  # per query: (id, score), best first


def vector_query(tbl, vector: np.ndarray | list[np.ndarray], k: int, *, exact: bool = False,
                 settings: SearchSettings = SEARCH, metric: str = "cosine", columns: tuple[str, ...] = ()):
    """The LanceDB query for the ``k`` nearest rows of ``vector`` by ``metric``: the serving query,
    or with ``exact`` the brute-force one that ANN recall is measured against. A list of vectors is
    one query, whose rows carry ``query_index``."""
    q = tbl.search(vector, vector_column_name=VECTOR).metric(metric)
    if exact:
        q = q.bypass_vector_index()
    else:
        q = q.nprobes(settings.nprobes)
        q = q.refine_factor(settings.refine_factor) if metric == "cosine" else q
    return q.select(["id", "_distance", *columns]).limit(k)


def _per_query(rows, n: int) -> list[list[int]]:
    whose = rows.column("query_index").to_pylist() if n > 1 else [0] * rows.num_rows
    out: list[list[int]] = [[] for _ in range(n)]
    for row, q in enumerate(whose):
        out[q].append(row)
    return out


class TableSearch:
    """Searches one index table (opened at a version) the way its ``codec`` stores it."""

    def __init__(self, tbl, codec: VectorCodec, settings: SearchSettings = SEARCH):
        self.tbl, self.codec, self.settings = tbl, codec, settings
        self._codes: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self._loading = threading.Lock()

    def search(self, vectors: np.ndarray, k: int, *, exact: bool = False) -> Ranked:
        """The ``k`` best documents of each query vector (model output, float32), best first."""
        q = self.codec.cut(np.asarray(vectors, dtype=np.float32))
        if len(q) == 0:
            return []
        if self.codec.kind == "int8":
            return self._scan_int8(q, k)
        if self.codec.kind == "binary":
            return self._binary(q, k, exact)
        rows = vector_query(self.tbl, q[0] if len(q) == 1 else list(q), k, exact=exact, settings=self.settings).to_arrow()
        ids, dist = rows.column("id").to_pylist(), rows.column("_distance").to_pylist()
        return [sorted(((ids[r], 1.0 - float(dist[r])) for r in mine), key=lambda h: -h[1])
                for mine in _per_query(rows, len(q))]

    def _binary(self, q: np.ndarray, k: int, exact: bool) -> Ranked:
        rescoring = self.codec.rescore != "none"
        bits = sign_bits(q)
        rows = vector_query(self.tbl, bits[0] if len(q) == 1 else list(bits), k * RESCORE_DEPTH if rescoring else k,
                            exact=exact, settings=self.settings, metric="hamming",
                            columns=(RESCORE,) if rescoring else ()).to_arrow()
        ids = rows.column("id").to_pylist()
        if rescoring:
            scores = np.einsum("rd,rd->r", self.codec.decode(rows.column(RESCORE)),
                               q[_query_rows(rows, len(q))])
        else:
            scores = 1.0 - 2.0 * np.asarray(rows.column("_distance").to_numpy(), dtype=np.float64) / self.codec.dim
        out = []
        for mine in _per_query(rows, len(q)):
            ranked = sorted(((ids[r], float(scores[r])) for r in mine), key=lambda h: -h[1])
            out.append(ranked[:k])
        return out

    def _load_codes(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        with self._loading:  # concurrent first searches read the codes once
            return self._read_codes()

    def warm(self) -> None:
        """Do now what the first search would (an int8 index reads its codes into memory)."""
        if self.codec.kind == "int8":
            self._load_codes()

    def _read_codes(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        if self._codes is None:
            ids: list[str] = []
            blocks = []
            for b in self.tbl.search().select(["id", VECTOR]).limit(None).to_batches(VECTOR_BATCH_ROWS):
                ids += b.column("id").to_pylist()
                width = b.schema.field(VECTOR).type.list_size
                blocks.append(b.column(VECTOR).flatten().to_numpy(zero_copy_only=False).reshape(-1, width))
            codes = np.concatenate(blocks) if blocks else np.zeros((0, self.codec.dim), dtype=np.int8)
            scale = self.codec.require_scale()
            norms = np.concatenate([np.linalg.norm(scale.decode(codes[s : s + _SCAN_ROWS]), axis=1)
                                    for s in range(0, len(codes), _SCAN_ROWS)] or [np.zeros(0)])
            self._codes = (ids, np.ascontiguousarray(codes), np.maximum(norms, 1e-12).astype(np.float32))
        return self._codes

    def _scan_int8(self, q: np.ndarray, k: int) -> Ranked:
        """Exact cosine of each query with every decoded code: q . ((c + 128) step + low) / |.|,
        computed as (q step) . c + q . (128 step + low) so no decoded copy is held."""
        ids, codes, norms = self._load_codes()
        scale = self.codec.require_scale()
        weighted, offset = q * scale.step, q @ (128.0 * scale.step + scale.low)
        best_idx = np.zeros((len(q), 0), dtype=np.int64)
        best = np.zeros((len(q), 0), dtype=np.float32)
        for s in range(0, len(codes), _SCAN_ROWS):
            block = (weighted @ codes[s : s + _SCAN_ROWS].astype(np.float32).T + offset[:, None]) / norms[s : s + _SCAN_ROWS]
            idx, top = top_k(block, k)
            best_idx, best = _top_merge(best_idx, best, idx + s, top, k)
        return [[(ids[i], float(v)) for i, v in zip(row_i, row_s)] for row_i, row_s in zip(best_idx, best)]


def _query_rows(rows, n: int) -> np.ndarray:
    return np.asarray(rows.column("query_index").to_numpy() if n > 1 else np.zeros(rows.num_rows, dtype=np.int64))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``scores``, best first: (indices, scores)."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), dtype=np.int64), np.zeros((len(scores), 0), dtype=scores.dtype)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def _top_merge(idx_a, score_a, idx_b, score_b, k: int):
    scores = np.concatenate([score_a, score_b], axis=1)
    picked, top = top_k(scores, k)
    return np.take_along_axis(np.concatenate([idx_a, idx_b], axis=1), picked, axis=1), top


def table_search(tbl, settings: IndexSettings, codec: VectorCodec) -> TableSearch:
    """How every reader searches ``tbl``: its kind's search with the record's search settings."""
    return TableSearch(tbl, codec, settings.search)


def has_ann_index(tbl) -> bool:
    return any(VECTOR in getattr(i, "columns", []) for i in tbl.list_indices())


def sample_vectors(tbl, codec: VectorCodec, size: int, seed: int = 0, batch_rows: int = VECTOR_BATCH_ROWS) -> np.ndarray:
    """``size`` stored vectors picked at random (decoded to unit float32), read batch by batch:
    memory stays bounded by one batch plus the sample, whatever the table's size."""
    n = tbl.count_rows()
    picks = np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
    out: list[np.ndarray] = []
    offset = 0
    for batch in tbl.search().select([codec.decoded_column]).limit(None).to_batches(batch_rows):
        rows = batch.num_rows
        inside = picks[(picks >= offset) & (picks < offset + rows)] - offset
        if len(inside):
            out.append(codec.decode(batch.column(0).take(inside)))
        offset += rows
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def measure_ann_recall(search: TableSearch, queries: np.ndarray, k: int = 10) -> dict[str, Any]:
    """Recall@k of the serving search against exact search of the same table, averaged over
    ``queries`` (vectors)."""
    recalls = []
    for q in queries:
        exact = [i for i, _ in search.search(q[None, :], k, exact=True)[0]]
        approx = [i for i, _ in search.search(q[None, :], k)[0]]
        if exact:
            recalls.append(len(set(exact) & set(approx)) / len(exact))
    return {f"recall@{k}_vs_exact": float(np.mean(recalls)) if recalls else 0.0, "sample": len(recalls),
            "search": search.settings.to_dict()}


def create_ann_index(tbl, codec: VectorCodec, kind: str = "IVF_PQ", partitions: int | None = None,
                     sub_vectors: int | None = None) -> dict[str, Any]:
    """Build LanceDB's ``kind`` index on the vector column (cosine; hamming for sign bits):
    ``partitions`` default sqrt(n); for IVF_PQ ``sub_vectors`` default dim/8 (the largest of
    dim/8, dim/4, 1 that divides dim)."""
    import warnings

    dim = codec.dim
    partitions = partitions or max(1, int(np.sqrt(tbl.count_rows())))
    options: dict[str, Any] = {"num_partitions": partitions}
    if kind in ("IVF_PQ", "IVF_HNSW_PQ"):
        sub_vectors = sub_vectors or next(s for s in (dim // 8, dim // 4, 1) if s and dim % s == 0)
        if dim % sub_vectors:
            raise UsageError(f"index setting 'sub_vectors': {sub_vectors} does not divide the {dim} dimensions")
        options["num_sub_vectors"] = sub_vectors
    with warnings.catch_warnings():  # LanceDB's notice about its newer create_index signature
        warnings.simplefilter("ignore", DeprecationWarning)
        tbl.create_index(metric=codec.metric, vector_column_name=VECTOR, index_type=kind, **options)
    built = {"type": kind, "partitions": partitions}
    return built | ({"sub_vectors": options["num_sub_vectors"]} if "num_sub_vectors" in options else {})


__all__ = ["RESCORE_DEPTH", "SEARCH", "SearchSettings", "TableSearch", "create_ann_index", "has_ann_index",
           "measure_ann_recall", "sample_vectors", "table_search", "top_k", "vector_query"]
