"""Serving: alias -> index -> that model's ONNX encoder -> LanceDB vector search.

Each query resolves its alias once (an O(1) read of the alias's compare-and-swap log) and then uses
only that index, opened at the table version recorded when it was marked ready: a promotion takes
effect for the next query without a restart, and a query never sees a half-built table or mixes
two indexes. Encoders and table handles (per table version) are cached, so switching back and forth is cheap.
Every query is built by :func:`embedops.reembed.ann.vector_query` with the one set of ANN settings
the integrity gate measures.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from embedops.errors import IndexStateError
from embedops.records import sql_in
from embedops.registry import IndexRecord, IndexStatus, Registry
from embedops.reembed.ann import VECTOR, vector_query
from embedops.reembed.encoder import OnnxEncoder
from embedops.reembed.onnx_export import ensure_export


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str = ""


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query and the index that produced all of them."""

    query: str
    index_id: str
    model_ref: str
    hits: list[Hit] = field(default_factory=list)
    latency_ms: float = 0.0

    def to_dict(self) -> dict:
        return {"query": self.query, "index_id": self.index_id, "model_ref": self.model_ref,
                "latency_ms": self.latency_ms, "hits": [h.__dict__ for h in self.hits]}


class Searcher:
    """Searches the index an alias points at (or a given index). Thread-safe; reuse one instance.

    >>> searcher = Searcher(Registry(store))                              # doctest: +SKIP
    >>> searcher.search("pg failover steps", k=5).hits[0].id              # doctest: +SKIP
    """

    def __init__(self, registry: Registry, *, providers: list[str] | None = None):
        self.registry = registry
        self.providers = providers
        self._lock = threading.Lock()
        self._encoders: dict[str, OnnxEncoder] = {}
        self._tables: dict[tuple[str, int], object] = {}

    def resolve(self, alias: str) -> IndexRecord:
        return self._record(self.registry.aliases.current(alias))

    def _record(self, index_id: str) -> IndexRecord:
        # Read on every query (one small-table lookup): a sync that moved the table version or a
        # retirement is seen by the very next query.
        rec = self.registry.indexes.get(index_id)
        if rec.status is not IndexStatus.READY:
            raise IndexStateError(f"index {index_id} is {rec.status.value}, not ready to serve")
        return rec

    def encoder_for(self, rec: IndexRecord) -> OnnxEncoder:
        """The (cached) ONNX encoder that embeds queries for index ``rec``."""
        key = f"{rec.model_ref}:{rec.params.get('precision', 'fp32')}"
        with self._lock:
            if key not in self._encoders:
                _, path = ensure_export(self.registry, rec.model_ref, rec.params.get("precision", "fp32"),
                                        providers=self.providers)
                self._encoders[key] = OnnxEncoder(path, providers=self.providers)
            return self._encoders[key]

    def _table(self, rec: IndexRecord):
        key = (rec.table_name, int(rec.table_version))
        with self._lock:
            if key not in self._tables:
                self._tables[key] = self.registry.store.open_table(rec.table_name, version=rec.table_version)
            return self._tables[key]

    def search_vectors(self, rec: IndexRecord, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        tbl = self._table(rec)
        out = []
        for v in vectors:
            rows = vector_query(tbl, v, k).to_arrow()
            out.append([Hit(i, 1.0 - float(d)) for i, d in zip(rows.column("id").to_pylist(),
                                                                   rows.column("_distance").to_pylist())])
        return out

    def stored_vectors(self, rec: IndexRecord, ids: list[str]) -> dict[str, np.ndarray]:
        """The vectors the index holds for these document ids (ids it lacks are left out): what a
        search scores against, without encoding the documents again."""
        tbl, out = self._table(rec), {}
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), 1000):
            rows = tbl.search().where(sql_in("id", wanted[start : start + 1000])).select(["id", VECTOR]) \
                .limit(None).to_arrow()
            out.update(zip(rows.column("id").to_pylist(), np.asarray(rows.column(VECTOR).to_pylist(), dtype=np.float32)))
        return out

    def search(self, query: str, k: int = 10, *, alias: str = "production", index_id: str | None = None,
               with_titles: bool = False) -> SearchResult:
        start = time.perf_counter()
        rec = self._record(index_id) if index_id else self.resolve(alias)
        vec = self.encoder_for(rec).encode([query])
        hits = self.search_vectors(rec, vec, k)[0]
        if with_titles and hits:
            hits = self._with_titles(rec, hits)
        return SearchResult(query, rec.index_id, rec.model_ref, hits, 1000 * (time.perf_counter() - start))

    def _with_titles(self, rec: IndexRecord, hits: list[Hit]) -> list[Hit]:
        rows = self.registry.corpora.table(rec.corpus).search().where(sql_in("id", [h.id for h in hits])) \
            .select(["id", "title", "text"]).limit(None).to_arrow().to_pylist()
        titles = {r["id"]: (r["title"] or r["text"][:80]) for r in rows}
        return [Hit(h.id, h.score, titles.get(h.id, "")) for h in hits]
