"""A progressive bridge: searching a corpus while the new model's index of it is being built
(issue #35). Documents already re-embedded are searched in the new model's space with its own
query vector; the rest in the old index's space with the query mapped by the adapter; the two hit
lists are merged by score, the old space's scores first put on the new space's scale by the line
the adapter's fit measured (``scale * score + shift``, :func:`embedops.trainer.adapters.score_calibration`).

A document is answered from exactly one space: the new one when its id is in the re-embedded set
(by default every id the new table holds now), the old one otherwise. Each side is searched deeper
than ``k`` until enough of its hits belong to it, so a filtered side never comes up short while it
has documents.

>>> reader = ProgressiveReader(old_reader, new_reader, record, encoder, adapter.apply, (1.02, -0.03))  # doctest: +SKIP
>>> reader.search(["statins and memory"], 10)[0][0]                                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embedops.index.reader import Hit, IndexReader, TextEncoder
from embedops.index.records import IndexRecord

_FIRST_DEPTH = 4  # a side is first searched this many times k deep


class ProgressiveReader(IndexReader):
    """Searches ``new`` for the re-embedded documents and ``old`` (through ``map_query``) for the
    others; ``encoder`` is the new model's, unmapped. ``reembedded``: the ids to answer from the new
    space (default: whatever ``new``'s table holds, read once)."""

    def __init__(self, old: IndexReader, new: IndexReader, record: IndexRecord, encoder: TextEncoder,
                 map_query: Callable[[np.ndarray], np.ndarray], calibration: tuple[float, float] = (1.0, 0.0),
                 reembedded: set[str] | None = None):
        super().__init__(old.table, record, encoder)
        self.old, self.new, self.map_query = old, new, map_query
        self.scale, self.shift = calibration
        self.reembedded = reembedded if reembedded is not None else new.doc_ids()
        self.all_ids = old.doc_ids()

    @property
    def new_share(self) -> float:
        """The share of the corpus each query sees in the new model's space."""
        return len(self.reembedded & self.all_ids) / len(self.all_ids) if self.all_ids else 0.0

    @property
    def bridge_info(self) -> dict:
        """The bridge, the index being built and the share of the corpus answered from it."""
        return self.record.bridge.to_dict() | {"new_index": self.new.index_id, "new_share": self.new_share}

    def doc_ids(self) -> set[str]:
        return set(self.all_ids)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        vectors = np.asarray(vectors, dtype=np.float32)
        done = self.reembedded
        new_side = _search_side(self.new, vectors, k, lambda i: i in done, len(done & self.all_ids))
        old_side = _search_side(self.old, self.map_query(vectors), k, lambda i: i not in done,
                                len(self.all_ids - done))
        out = []
        for fresh, stale in zip(new_side, old_side):
            merged = fresh + [Hit(h.id, self.scale * h.score + self.shift, h.title) for h in stale]
            out.append(sorted(merged, key=lambda h: -h.score)[:k])
        return out


def _search_side(reader: IndexReader, vectors: np.ndarray, k: int, keep: Callable[[str], bool],
                 available: int) -> list[list[Hit]]:
    """Each query's best ``k`` hits of ``reader`` that ``keep`` accepts (of ``available`` such
    documents): searched ``_FIRST_DEPTH`` x k deep, then deeper for the queries still short."""
    want = min(k, available)
    out: list[list[Hit]] = [[] for _ in vectors]
    if want == 0:
        return out
    todo, depth, total = list(range(len(vectors))), _FIRST_DEPTH * k, reader.count()
    while todo:
        found = reader.search_vectors(vectors[todo], min(depth, total))
        short = []
        for q, hits in zip(todo, found):
            out[q] = [h for h in hits if keep(h.id)][:k]
            if len(out[q]) < want and len(hits) == min(depth, total) and depth < total:
                short.append(q)
        todo, depth = short, depth * 4
    return out
