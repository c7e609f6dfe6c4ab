"""Reading and searching one index: its LanceDB table at the version recorded when it was marked
ready, and (to search by text) the ONNX encoder of the model that built it.

Every search goes through :func:`embedops.index.ann.table_search`, the index's stored kind with the
one set of ANN settings the integrity gate measures. Mining, the guards and shadow receive an :class:`IndexReader`; the
registry's :class:`~embedops.registry.Searcher` opens them behind aliases.

>>> reader = IndexReader(store.open_table(rec.table_name, version=rec.table_version), rec, encoder)  # doctest: +SKIP
>>> reader.search(["pg failover steps"], k=5)[0][0].id                                               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from embedops.index.ann import TableSearch, table_search
from embedops.index.records import IndexRecord
from embedops.index.table import id_hashes
from embedops.records import sql_in


class TextEncoder(Protocol):
    """What a reader needs of an encoder (:class:`embedops.encoding.OnnxEncoder` is one)."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str = ""


class IndexReader:
    """One ready index, opened for reading: ``table`` at the record's version, ``encoder`` for queries."""

    def __init__(self, table, record: IndexRecord, encoder: TextEncoder | None = None,
                 search: TableSearch | None = None):
        self.table = table
        self.record = record
        self.encoder = encoder
        self._search = search  # shared by readers of one table (an int8 index's codes are read once)

    @property
    def searcher(self) -> TableSearch:
        """The search of this table the way its kind stores it (an int8 index's codes load once)."""
        if self._search is None:
            params = self.record.settings
            self._search = table_search(self.table, params.index, params.codec)
        return self._search

    @property
    def index_id(self) -> str:
        return self.record.index_id

    @property
    def bridge_info(self) -> dict | None:
        """What a response says of the bridge that answered (None for an index)."""
        return self.record.bridge.to_dict() if self.record.bridge else None

    def count(self) -> int:
        return self.table.count_rows()

    def doc_ids(self) -> set[str]:
        """The ids of every document this index holds (what a search can return)."""
        return set(id_hashes(self.table))

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.encoder is None:
            raise TypeError(f"index {self.index_id} was opened without an encoder; search it by vectors")
        return self.encoder.encode(texts)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` nearest documents of each query vector, best first (score = cosine). Several
        vectors go to LanceDB as one query (its ``query_index`` column says whose each row is): 32
        searches of SciFact's 5,183 vectors took 22 ms so, against 214 ms one by one
        (bench/search_batches.py, docs/BENCHMARKS.md)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) == 0:
            return []
        return [[Hit(i, s) for i, s in ranked] for ranked in self.searcher.search(vectors, k)]

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Encode ``queries`` with the index's model and search them."""
        return self.search_vectors(self.encode(queries), k)

    def stored_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """The vectors the index holds for these document ids (ids it lacks are left out), as unit
        float32 (codes decoded: what a search scores against), without encoding the documents again."""
        out: dict[str, np.ndarray] = {}
        wanted = sorted(set(ids))
        codec = self.record.settings.codec
        for start in range(0, len(wanted), 1000):
            rows = self.table.search().where(sql_in("id", wanted[start : start + 1000])) \
                .select(["id", codec.decoded_column]).limit(None).to_arrow()
            out.update(zip(rows.column("id").to_pylist(), codec.decode(rows.column(codec.decoded_column))))
        return out
