"""Hard-negative mining, positive-aware (NV-Retriever's TopK-PercPos, Moreira et al., 2024).

For each pair, the query is searched in an index of the corpus built with the model being tuned
(an :class:`~embedops.index.IndexReader` the caller opens; no corpus x corpus matrix in memory:
LanceDB search, one query at a time). Candidates are taken
in rank order from an optional window ``[range_min, range_max)``, skipping every known positive of
the query; a candidate scoring above ``margin`` x the positive's score (default 95%) is dropped as a
probable false negative. The first ``num_negatives`` survivors become the pair's negatives.

With ``try_margin`` (a looser margin, above ``margin``), the candidates between the two margins are
kept too, with every candidate's score, in the pair's ``mined`` record
(:class:`~embedops.trainer.pairs.MinedCandidates`): `embedops train` can then filter them again at any
margin in that range and let the user's held-out queries choose (:mod:`embedops.trainer.margins`).

>>> index = Searcher(reg).open(find_ready_index(reg, "minilm@1", "scifact"))                # doctest: +SKIP
>>> mined, report = mine_hard_negatives(pairs, index, reg.corpora.table("scifact"))         # doctest: +SKIP
>>> report.removed_false_negatives                                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from embedops.corpus import doc_text
from embedops.index import IndexReader
from embedops.records import sql_in
from embedops.trainer.margins import short_and_filled
from embedops.trainer.pairs import MinedCandidates, TrainingPair


@dataclass
class QueryMining:
    """What mining saw for one query, over all its pairs: candidates looked at, how many were its
    known positives (skipped) or probable positives (above the margin, dropped), negatives kept."""

    query: str
    pairs: int = 0
    candidates: int = 0
    known_positives: int = 0
    probable_positives: int = 0
    negatives: int = 0

    @property
    def positive_share(self) -> float:
        """The share of candidates that were known or probable positives."""
        return (self.known_positives + self.probable_positives) / self.candidates if self.candidates else 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__) | {"positive_share": round(self.positive_share, 4)}


@dataclass
class MiningReport:
    pairs: int
    num_negatives: int
    candidates_considered: int = 0
    removed_known_positives: int = 0
    removed_false_negatives: int = 0
    pairs_short_of_negatives: int = 0
    try_margin: float | None = None  # candidates up to this margin kept in each pair's ``mined`` record
    pairs_changed_at_try_margin: int = 0  # pairs whose negatives would differ at try_margin
    pairs_filled_at_try_margin: int = 0  # pairs short of negatives at margin that get more at try_margin
    index_id: str = ""
    per_query: dict[str, QueryMining] = field(default_factory=dict)

    def crowded_queries(self, share: float = 0.5) -> list[QueryMining]:
        """Queries where more than ``share`` of the candidates were known or probable positives (many
        relevant documents: in-batch and topped-up negatives are risky for them), most crowded first."""
        return sorted((q for q in self.per_query.values() if q.positive_share > share),
                      key=lambda q: -q.positive_share)

    def write_per_query(self, path) -> None:
        """Each query's :class:`QueryMining` as a JSON line, written whole or not at all."""
        import json
        from pathlib import Path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in self.per_query.values()),
                       encoding="utf-8")
        tmp.replace(path)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "per_query"} | {
            "queries": len(self.per_query), "crowded_queries": len(self.crowded_queries())}


def mine_hard_negatives(pairs: list[TrainingPair], index: IndexReader, corpus_table, *,
                        num_negatives: int = 3, range_min: int = 0, range_max: int = 50, margin: float = 0.95,
                        try_margin: float | None = None,
                        on_progress: Callable[[int, int], None] | None = None) -> tuple[list[TrainingPair], MiningReport]:
    """Return ``pairs`` with ``negatives`` filled in, and what the filters removed.

    ``index``: a ready index of the corpus, opened with the encoder of the model being tuned;
    ``corpus_table``: that corpus's table (negatives are its documents' texts); ``try_margin``: see
    the module's docstring (None or ``margin`` keeps no ``mined`` record)."""
    if try_margin is not None and try_margin < margin:
        raise ValueError(f"try_margin {try_margin:g} is below margin {margin:g}: it must be the looser of the two")
    keep = try_margin is not None and try_margin > margin
    report = MiningReport(pairs=len(pairs), num_negatives=num_negatives, index_id=index.index_id,
                          try_margin=try_margin if keep else None)

    positives: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        if p.doc_id:
            positives[p.query].add(p.doc_id)
    q_vecs = index.encode([p.query for p in pairs])
    pos_scores = (q_vecs * _positive_vectors(index, corpus_table, pairs)).sum(axis=1)
    depth = range_max + max((len(v) for v in positives.values()), default=0)

    chosen: list[list[str]] = []
    scored: list[list[tuple[str, float]]] = []  # every candidate up to try_margin, in rank order
    for i, p in enumerate(pairs):
        hits = index.search_vectors(q_vecs[i : i + 1], depth)[0]
        seen = report.per_query.setdefault(p.query, QueryMining(p.query))
        seen.pairs += 1
        picked: list[str] = []
        spare: list[tuple[str, float]] = []
        for rank, hit in enumerate(hits):
            if len(picked) == num_negatives or rank >= range_max:
                break
            if rank < range_min:
                continue
            seen.candidates += 1
            if hit.id in positives[p.query] or hit.id == p.doc_id:
                seen.known_positives += 1
                continue
            if hit.score > margin * float(pos_scores[i]):
                seen.probable_positives += 1
                if keep and hit.score <= try_margin * float(pos_scores[i]):
                    spare.append((hit.id, float(hit.score)))
                continue
            picked.append(hit.id)
            spare.append((hit.id, float(hit.score)))
        scored.append(spare)
        seen.negatives += len(picked)
        if len(picked) < num_negatives:
            report.pairs_short_of_negatives += 1
        chosen.append(picked)
        if on_progress:
            on_progress(i + 1, len(pairs))

    report.candidates_considered = sum(q.candidates for q in report.per_query.values())
    report.removed_known_positives = sum(q.known_positives for q in report.per_query.values())
    report.removed_false_negatives = sum(q.probable_positives for q in report.per_query.values())
    texts = _doc_texts(corpus_table, {d for ids in chosen for d in ids} | {d for s in scored for d, _ in s})
    mined = [replace(p, negatives=[texts[d] for d in ids if d in texts]) for p, ids in zip(pairs, chosen)]
    if keep:
        mined = [replace(p, mined=MinedCandidates((margin, try_margin), num_negatives, float(pos),
                                                  tuple((texts[d], s) for d, s in cands if d in texts)))
                 for p, cands, pos in zip(mined, scored, pos_scores)]
        report.pairs_changed_at_try_margin = sum(p.mined.negatives_at(try_margin) != p.negatives for p in mined)
        report.pairs_filled_at_try_margin = short_and_filled(mined, try_margin)[1]
    return mined, report


def _positive_vectors(index: IndexReader, corpus_table, pairs: list[TrainingPair]) -> np.ndarray:
    """Each pair's positive as a vector: the index's stored vector where the positive is that corpus
    document's text (no second encoding of the corpus), else freshly encoded."""
    if not pairs:
        return np.zeros((0, 0), dtype=np.float32)
    ids = {p.doc_id for p in pairs if p.doc_id}
    texts, stored = _doc_texts(corpus_table, ids), index.stored_vectors(list(ids))
    from_index = [p.doc_id in stored and texts.get(p.doc_id) == p.positive for p in pairs]
    fresh = iter(index.encode([p.positive for p, hit in zip(pairs, from_index) if not hit]))
    rows = [stored[p.doc_id] if hit else next(fresh) for p, hit in zip(pairs, from_index)]
    return np.stack(rows).astype(np.float32)


def _doc_texts(tbl, ids: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    id_list = sorted(ids)
    for start in range(0, len(id_list), 1000):
        rows = tbl.search().where(sql_in("id", id_list[start : start + 1000])).select(["id", "title", "text"]) \
            .limit(None).to_arrow().to_pylist()
        out.update({r["id"]: doc_text(r["title"], r["text"]) for r in rows})
    return out


def round_trip_ranker(index: IndexReader, k: int = 10):
    """``rank_of(queries, doc_ids)`` for :func:`embedops.trainer.generate.filter_pairs`: the rank of
    each source document among the top-k for its query in ``index`` (searched with its model)."""

    def rank_of(queries: list[str], doc_ids: list[str]) -> list[int | None]:
        vecs = index.encode(queries)
        out: list[int | None] = []
        for v, d in zip(vecs, doc_ids):
            ids = [h.id for h in index.search_vectors(np.asarray([v]), k)[0]]
            out.append(ids.index(d) if d in ids else None)
        return out

    return rank_of
