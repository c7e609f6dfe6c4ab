"""Training pairs: (query, positive document) with optional hard negatives, as JSONL.

One line per pair::

    {"query": "...", "doc_id": "d17", "positive": "title and text of d17",
     "negatives": ["text of a hard negative", ...], "source": "labels|extractive|openai|...",
     "relevance": 2}

``relevance`` is the graded judgement of a labelled pair (the qrels score, e.g. 1 or 2 on a 0-2 scale),
kept from the import; absent for generated pairs.

``mined`` is written by ``pairs mine``: the candidates it looked at with their scores, so the trainer
can filter them again at another margin (:class:`MinedCandidates`)::

    "mined": {"margins": [0.95, 1.0], "negatives": 3, "positive_score": 0.71,
              "candidates": [["text of a candidate", 0.69], ...]}

Inputs accepted from users: ``{"query", "doc_id"}`` (the text is looked up in the corpus) or
``{"query", "text"}`` (used directly). Labelled pairs come from a BEIR directory's qrels.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from embedops.beir import read_beir
from embedops.corpus import iter_jsonl
from embedops.errors import InputError, InputProblem


@dataclass(frozen=True)
class MinedCandidates:
    """What mining saw for one pair: its positive's score, and in rank order every candidate scored
    at most ``margins[1]`` x that score (known positives left out) until ``negatives`` of them scored
    at most ``margins[0]`` x. :meth:`negatives_at` gives exactly what mining at any margin between
    the two would have kept."""

    margins: tuple[float, float]
    negatives: int
    positive_score: float
    candidates: tuple[tuple[str, float], ...]

    def negatives_at(self, margin: float) -> list[str]:
        """The negatives mining at ``margin`` keeps: the first ``negatives`` candidates scoring at most
        ``margin`` x the positive's score. Raises ValueError outside ``margins``."""
        low, high = self.margins
        if not low <= margin <= high:
            raise ValueError(f"margin {margin:g} is outside the mined range {low:g}-{high:g}")
        kept = [text for text, s in self.candidates if s <= margin * self.positive_score]
        return kept[: self.negatives]

    def to_dict(self) -> dict:
        return {"margins": list(self.margins), "negatives": self.negatives, "positive_score": self.positive_score,
                "candidates": [list(c) for c in self.candidates]}


@dataclass
class TrainingPair:
    """A query and its positive document; ``negatives`` are filled by mining."""

    query: str
    positive: str
    doc_id: str | None = None
    negatives: list[str] = field(default_factory=list)
    source: str = "labels"
    relevance: float | None = None  # the qrels grade of a labelled pair (> 0); None when not judged
    mined: MinedCandidates | None = None  # mining's candidates and scores, to filter again at another margin

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v not in (None, []) and k != "mined"}
        return out | ({"mined": self.mined.to_dict()} if self.mined else {})


def write_pairs(path: Path | str, pairs: list[TrainingPair]) -> Path:
    """Write pairs atomically (a temp file renamed into place: never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_pairs(path: Path | str, corpus: dict[str, str] | None = None) -> list[TrainingPair]:
    """Read and validate a pairs JSONL; ``doc_id``-only lines need ``corpus`` ({id: text})."""
    path = Path(path)
    if not path.is_file():
        raise InputError(InputProblem(str(path), None, None, "no such pairs file"))
    problems: list[InputProblem] = []
    pairs: list[TrainingPair] = []
    for lineno, obj in iter_jsonl(path, problems):
        query = obj.get("query")
        if not isinstance(query, str) or not query.strip():
            problems.append(InputProblem(str(path), lineno, "query", "missing or empty query"))
            continue
        positive = obj.get("positive") or obj.get("text")
        doc_id = obj.get("doc_id")
        if positive is None and doc_id is not None:
            if corpus is None:
                problems.append(InputProblem(str(path), lineno, "doc_id", "doc_id given but no corpus to look it up in"))
                continue
            positive = corpus.get(str(doc_id))
            if positive is None:
                problems.append(InputProblem(str(path), lineno, "doc_id", f"unknown document id {doc_id!r}"))
                continue
        if not isinstance(positive, str) or not positive.strip():
            problems.append(InputProblem(str(path), lineno, "text", "needs \"doc_id\" or a non-empty \"text\""))
            continue
        negatives = obj.get("negatives") or []
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            problems.append(InputProblem(str(path), lineno, "negatives", "must be a list of strings"))
            continue
        relevance = obj.get("relevance")
        if relevance is not None and (isinstance(relevance, bool) or not isinstance(relevance, (int, float))
                                      or not math.isfinite(relevance) or relevance <= 0):
            problems.append(InputProblem(str(path), lineno, "relevance", "must be a number above 0 (a qrels grade)"))
            continue
        mined = None
        if obj.get("mined") is not None:
            mined = _mined(obj["mined"])
            if isinstance(mined, str):
                problems.append(InputProblem(str(path), lineno, "mined", mined))
                continue
        pairs.append(TrainingPair(query=query, positive=positive, doc_id=None if doc_id is None else str(doc_id),
                                  negatives=negatives, source=obj.get("source", "file"), relevance=relevance,
                                  mined=mined))
    if not pairs and not problems:
        problems.append(InputProblem(str(path), None, None, "no pairs found"))
    if problems:
        raise InputError(problems)
    return pairs


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _mined(obj) -> MinedCandidates | str:
    """A ``mined`` record read back, or what is wrong with it."""
    if not isinstance(obj, dict):
        return "must be an object (written by pairs mine)"
    margins, n, pos, cands = obj.get("margins"), obj.get("negatives"), obj.get("positive_score"), obj.get("candidates")
    if not (isinstance(margins, list) and len(margins) == 2 and all(_number(m) for m in margins)
            and 0 < margins[0] <= margins[1]):
        return "margins must be two numbers, low then high, above 0"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return "negatives must be a whole number above 0"
    if not _number(pos):
        return "positive_score must be a number"
    if not isinstance(cands, list) or not all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str)
                                              and _number(c[1]) for c in cands):
        return "candidates must be [text, score] pairs"
    return MinedCandidates((float(margins[0]), float(margins[1])), n, float(pos),
                           tuple((c[0], float(c[1])) for c in cands))


def import_beir(beir_dir: Path | str, split: str = "train") -> list[TrainingPair]:
    """Labelled pairs from a BEIR directory: one per (query, relevant document) in qrels/SPLIT.tsv,
    with its grade as ``relevance`` (a grade of 0 or below is "not relevant": no pair)."""
    beir = read_beir(beir_dir, split)
    queries, docs, where = beir.queries, beir.documents or {}, str(beir.qrels_file)
    pairs, problems = [], []
    for qid, rels in beir.qrels.items():
        if qid not in queries:
            problems.append(InputProblem(where, None, "query-id", f"query {qid!r} not in queries.jsonl"))
            continue
        for doc_id, rel in rels.items():
            if rel <= 0:
                continue
            if doc_id not in docs:
                problems.append(InputProblem(where, None, "corpus-id", f"document {doc_id!r} not in corpus.jsonl"))
                continue
            pairs.append(TrainingPair(query=queries[qid], positive=docs[doc_id], doc_id=doc_id, source="labels",
                                      relevance=rel))
    if problems:
        raise InputError(problems)
    return pairs
