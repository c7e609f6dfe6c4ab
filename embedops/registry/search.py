"""Serving: alias -> index record -> an open :class:`~embedops.index.IndexReader` (that index's
LanceDB table at its ready version, and its model's ONNX encoder) -> vector search.

Each query resolves its alias once (an O(1) read of the alias's compare-and-swap log) and then uses
only that index, opened at the table version recorded when it was marked ready: a promotion takes
effect for the next query without a restart, and a query never sees a half-built table or mixes
two indexes. Encoders come from the process-wide cache (:func:`~embedops.registry.exports.open_export`)
and table handles are cached per table version, so switching back and forth is cheap.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embedops.encoding import OnnxEncoder
from embedops.encoding.adapter import BridgedEncoder
from embedops.errors import IndexStateError, UsageError
from embedops.index import Hit, IndexReader, IndexRecord, IndexStatus, ProgressiveReader
from embedops.index.ann import TableSearch, table_search
from embedops.records import sql_in
from embedops.registry.exports import open_encoder
from embedops.registry.progressive import ProgressivePlan, open_progressive

if TYPE_CHECKING:
    from embedops.registry import Registry

__all__ = ["Hit", "SearchResult", "Searcher"]


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query and the index that produced all of them."""

    query: str
    index_id: str
    model_ref: str
    hits: list[Hit] = field(default_factory=list)
    latency_ms: float = 0.0  # the search itself: embedding the query, the index lookup, the titles
    open_ms: float = 0.0  # opening the index and its model's encoder first (once per process)
    bridge: dict | None = None  # when a bridge answered: its adapter, old index and that index's model

    def to_dict(self) -> dict:
        return {"query": self.query, "index_id": self.index_id, "model_ref": self.model_ref,
                "latency_ms": self.latency_ms, "open_ms": self.open_ms, "hits": [h.__dict__ for h in self.hits],
                "bridge": self.bridge}


class Searcher:
    """Searches the index an alias points at (or a given index). Thread-safe; reuse one instance.

    >>> searcher = Searcher(Registry(store))                              # doctest: +SKIP
    >>> searcher.search("pg failover steps", k=5).hits[0].id              # doctest: +SKIP
    """

    def __init__(self, registry: Registry, *, providers: list[str] | None = None, runtime: str = "auto",
                 read_only: bool = False):
        self.registry = registry
        self.providers = providers
        self.read_only = read_only  # never export a model (a server writes nothing): ExportMissingError
        self.runtime = runtime  # which runtime embeds queries: auto, onnxruntime or openvino (choose_runtime)
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, int], object] = {}
        self._searches: dict[tuple[str, int], TableSearch] = {}  # per table: an int8 index's codes load once
        self._encoders: dict[tuple[str, str], OnnxEncoder] = {}  # (exact model ref, precision): no read per query

    def resolve(self, alias: str) -> IndexRecord:
        return self.record(self.registry.aliases.current(alias))

    def record(self, index_id: str) -> IndexRecord:
        """The ready record of ``index_id`` (an index, or a bridge: :meth:`Registry.target`). Read on
        every query (one small-table lookup): a sync that moved the table version or a retirement is
        seen by the very next query."""
        rec = self.registry.target(index_id)
        if rec.status is not IndexStatus.READY:
            raise IndexStateError(f"{rec.label} is {rec.status.value}, not ready to serve")
        return rec

    def encoder_for(self, rec: IndexRecord) -> OnnxEncoder | BridgedEncoder:
        """The ONNX encoder that embeds queries for index ``rec`` (for a bridge, the new model's,
        mapped by its adapter): opened through the process-wide cache once, then kept by the exact
        model ref (a version's files never change), so a query costs no model-table read."""
        key = (rec.model_ref, rec.precision, rec.bridge.adapter_id if rec.bridge else None)
        encoder = self._encoders.get(key)
        if encoder is None:
            encoder = open_encoder(self.registry, rec.model_ref, rec.precision, providers=self.providers,
                                   runtime=self.runtime, create=not self.read_only)
            if rec.bridge is not None:  # the adapter's files are verified as it loads
                encoder = BridgedEncoder(encoder, self.registry.adapters.load(rec.bridge.adapter_id)[1])
            with self._lock:
                self._encoders[key] = encoder
        return encoder

    def _table(self, rec: IndexRecord):
        key = (rec.table_name, int(rec.table_version or 0))
        with self._lock:
            if key not in self._tables:
                self._tables[key] = self.registry.store.open_table(rec.table_name, version=rec.table_version)
            return self._tables[key]

    def _search(self, rec: IndexRecord) -> TableSearch:
        key = (rec.table_name, int(rec.table_version or 0))
        table = self._table(rec)
        with self._lock:
            if key not in self._searches:
                params = rec.settings
                self._searches[key] = table_search(table, params.index, params.codec)
            return self._searches[key]

    def open(self, index: str | IndexRecord, *, warm: bool = False) -> IndexReader:
        """A reader of a ready index (by id or record) with its model's encoder; ``warm``: do now
        what its first search would (read an int8 index's codes into memory)."""
        rec = self.record(index) if isinstance(index, str) else index
        search = self._search(rec)
        if warm:
            search.warm()
        return IndexReader(self._table(rec), rec, self.encoder_for(rec), search)

    def open_progressive(self, rec: IndexRecord, plan: ProgressivePlan) -> ProgressiveReader:
        """Bridge ``rec`` answering from both spaces as far as ``plan``'s rebuild is (issue #35)."""
        bridged = self.encoder_for(rec)  # the adapter, verified as it loads
        own = self.encoder_for(dataclasses.replace(rec, bridge=None))  # the new model's queries, unmapped
        return open_progressive(self.registry, rec, plan.new_index, plan.version, own, bridged.adapter.apply)

    def search_vectors(self, rec: IndexRecord, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        return IndexReader(self._table(rec), rec, search=self._search(rec)).search_vectors(vectors, k)

    def stored_vectors(self, rec: IndexRecord, ids: list[str]) -> dict[str, np.ndarray]:
        return IndexReader(self._table(rec), rec).stored_vectors(ids)

    def search(self, query: str, k: int = 10, *, alias: str = "production", index_id: str | None = None,
               with_titles: bool = False) -> SearchResult:
        if k < 1:
            raise UsageError(f"k (hits to return) must be at least 1, got {k}")
        opening = time.perf_counter()
        rec = self.record(index_id) if index_id else self.resolve(alias)
        reader = self.open(rec)
        start = time.perf_counter()  # the query's own time: not the index table's or the encoder's opening
        hits = reader.search([query], k)[0]
        if with_titles and hits:
            hits = self.with_titles(rec, hits)
        done = time.perf_counter()
        return SearchResult(query, rec.index_id, rec.model_ref, hits, 1000 * (done - start), 1000 * (start - opening),
                            rec.bridge.to_dict() if rec.bridge else None)

    def with_titles(self, rec: IndexRecord, hits: list[Hit]) -> list[Hit]:
        """``hits`` with their documents' titles (or the first 80 characters of the text)."""
        docs = self.documents(rec, [h.id for h in hits])
        return [Hit(h.id, h.score, _title(*docs[h.id]) if h.id in docs else "") for h in hits]

    def documents(self, rec: IndexRecord, ids: list[str]) -> dict[str, tuple[str, str]]:
        """``{id: (title, text)}`` of these documents of ``rec``'s corpus (one read of the corpus table)."""
        if not ids:
            return {}
        rows = self.registry.corpora.table(rec.corpus).search().where(sql_in("id", sorted(set(ids)))) \
            .select(["id", "title", "text"]).limit(None).to_arrow().to_pylist()
        return {r["id"]: (r["title"] or "", r["text"] or "") for r in rows}


def _title(title: str, text: str) -> str:
    return title or text[:80]
