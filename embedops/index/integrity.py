"""Integrity of an index table against its corpus: row count, ids and content hashes, dimension
and stored kind, NaN and norms (of the vectors as decoded: int8 codes and sign bits too); and,
when it has an ANN index, its recall@k against exact search measured now with the serving search
settings (never read from the build record).

Builds run these checks before marking an index ready; the integrity gate runs them again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedops.errors import EmbedopsError
from embedops.index.ann import TableSearch, has_ann_index, measure_ann_recall, sample_vectors
from embedops.index.codecs import VectorCodec
from embedops.index.table import id_hashes, index_schema, vector_batches


class IntegrityError(EmbedopsError):
    """An index failed its integrity checks (and is not, or should not be, ready)."""


def diff_ids(index_table, corpus_table) -> tuple[list[str], list[str]]:
    """(ids to embed: new or changed, ids to delete) between a corpus table and an index table
    (``index_table`` None: no table yet)."""
    want = id_hashes(corpus_table)
    have = id_hashes(index_table) if index_table is not None else {}
    upsert = [i for i, h in want.items() if have.get(i) != h]
    delete = [i for i in have if i not in want]
    return upsert, delete


def check_integrity(index_id: str, index_table, corpus_table, codec: VectorCodec | int,
                    norm_tolerance: float = 1e-3) -> dict[str, Any]:
    """Counts, ids, NaN, norms and dimension of ``index_table`` (None: not created yet) against
    ``corpus_table`` and how ``codec`` stores the model's vectors (an int: float32 of that
    dimension); raises :class:`IntegrityError` naming every problem."""
    codec = VectorCodec("float32", codec) if isinstance(codec, int) else codec
    dim = codec.dim
    problems = []
    n_index = index_table.count_rows() if index_table is not None else 0
    n_corpus = corpus_table.count_rows()
    if n_index != n_corpus:
        problems.append(f"row count {n_index} != corpus count {n_corpus}")
    upsert, delete = diff_ids(index_table, corpus_table)
    if upsert or delete:
        problems.append(f"{len(upsert)} corpus ids missing or stale, {len(delete)} extra ids")
    have_dim = 0
    if index_table is not None:
        want = [(f.name, str(f.type)) for f in index_schema(codec)]
        have = [(f.name, str(f.type)) for f in index_table.schema if f.name in dict(want)]
        have_dim = dim if have == want else -1  # the schema fixes the width: matching columns, matching dims
        if have != want:
            problems.append(f"stored columns {have} are not those of a {codec.kind} index of "
                            f"{dim} dimensions {want}")
    if have_dim not in (dim, -1):
        problems.append(f"vector dimension {have_dim} != model dimension {dim}")
    nan = 0
    worst = 0.0
    if index_table is not None and have_dim == dim:
        for b in vector_batches(index_table, column=codec.decoded_column):
            v = codec.decode(b.column(0))
            nan += int(np.isnan(v).any(axis=1).sum())
            norms = np.linalg.norm(np.nan_to_num(v), axis=1)
            if len(norms):
                worst = max(worst, float(np.abs(norms - 1).max()))
    if nan:
        problems.append(f"{nan} vectors contain NaN")
    if worst > norm_tolerance:
        problems.append(f"vector norms deviate from 1 by up to {worst:.4g} (tolerance {norm_tolerance})")
    if problems:
        raise IntegrityError(f"index {index_id} failed integrity checks: " + "; ".join(problems))
    return {"rows": n_index, "corpus_rows": n_corpus, "dim": have_dim, "nan_vectors": 0, "max_norm_error": worst,
            "stored": codec.kind + (f"+{codec.rescore}" if codec.rescore != "none" else "")}


def check_index_integrity(index_id: str, search: TableSearch, corpus_table, *, queries: np.ndarray | None = None,
                          sample: int = 100, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """:func:`check_integrity` now, and, when the searched table has an ANN index, its recall@k
    against exact search now, with the serving search, on up to ``sample`` of ``queries`` (query
    vectors; default: stored vectors picked at random)."""
    table = search.tbl
    checks = check_integrity(index_id, table, corpus_table, search.codec)
    if has_ann_index(table):
        if queries is None or not len(queries):
            queries = sample_vectors(table, search.codec, sample, seed)
        elif len(queries) > sample:
            queries = queries[np.sort(np.random.default_rng(seed).choice(len(queries), sample, replace=False))]
        checks["ann"] = {"measured": "at check time"} | measure_ann_recall(search, queries, k)
    return checks


def recall_vs_float(search: TableSearch, exact_float: TableSearch, queries: np.ndarray, k: int = 10) -> dict[str, Any]:
    """Recall@k of a smaller footprint's search (int8 codes, sign bits, fewer dimensions) against
    exact search of the same model's float32 vectors of the same corpus, over ``queries``."""
    got = search.search(queries, k)
    want = exact_float.search(queries, k, exact=True)
    recalls = [len({i for i, _ in g} & {i for i, _ in w}) / len(w) for g, w in zip(got, want) if w]
    return {f"recall@{k}_vs_float32": float(np.mean(recalls)) if recalls else 0.0, "sample": len(recalls)}
