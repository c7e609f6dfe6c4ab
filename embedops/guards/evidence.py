"""What a gold set can judge: the queries with at least one relevant document that every compared
index holds, and the judgements that name documents none of them hold.

A gold set made for another corpus version (or before a re-chunk changed document ids) names
documents that are not in the index: such a query scores 0 for every index, its per-query delta is 0,
and a paired test over those zeros "proves" that nothing changed. :func:`gold_evidence` keeps only
the queries that can tell two indexes apart, restricted to the documents they hold; the domain gate
fails when too few remain (``min_gold_queries``) or too many judgements name absent documents
(``max_missing_qrels``). See docs/CONCEPTS.md, "Evidence".

>>> ev = gold_evidence({"q1": "a", "q2": "b"}, {"q1": {"d1": 1}, "q2": {"gone": 1}}, present={"d1", "d2"})
>>> sorted(ev.queries), ev.missing_judgements, ev.missing_examples
(['q1'], 1, ['gone'])
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GoldEvidence:
    """The judgeable part of a gold set.

    ``queries``/``qrels``: the queries with a relevant document present in every compared index, and
    their judgements restricted to present documents; ``gold_queries``: queries the gold set judges;
    ``relevant_judgements``: its judgements with relevance > 0; ``missing_judgements``: those naming
    a document absent from at least one compared index (first ids in ``missing_examples``)."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    gold_queries: int
    relevant_judgements: int
    missing_judgements: int
    missing_examples: list[str] = field(default_factory=list)

    @property
    def judgeable(self) -> int:
        return len(self.queries)

    @property
    def missing_share(self) -> float:
        return self.missing_judgements / self.relevant_judgements if self.relevant_judgements else 1.0

    def to_dict(self) -> dict:
        return {"gold_queries": self.gold_queries, "judgeable_queries": self.judgeable,
                "relevant_judgements": self.relevant_judgements, "missing_judgements": self.missing_judgements,
                "missing_share": self.missing_share, "missing_examples": self.missing_examples}


def gold_evidence(queries: dict[str, str], qrels: dict[str, dict[str, int]], present: set[str],
                  examples: int = 5) -> GoldEvidence:
    """The judgeable queries of a gold set over the documents in ``present`` (the ids every compared
    index holds)."""
    kept_queries: dict[str, str] = {}
    kept_qrels: dict[str, dict[str, int]] = {}
    relevant = missing = 0
    missing_ids: list[str] = []
    for qid, judged in qrels.items():
        if qid not in queries:
            continue
        for doc, rel in judged.items():
            if rel > 0:
                relevant += 1
                if doc not in present:
                    missing += 1
                    if len(missing_ids) < examples and doc not in missing_ids:
                        missing_ids.append(doc)
        here = {d: r for d, r in judged.items() if d in present}
        if any(r > 0 for r in here.values()):
            kept_queries[qid] = queries[qid]
            kept_qrels[qid] = here
    return GoldEvidence(kept_queries, kept_qrels, sum(1 for q in qrels if q in queries), relevant, missing, missing_ids)
