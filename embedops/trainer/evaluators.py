"""The scores a training run is steered by (sentence-transformers evaluators): domain retrieval on
held-out pairs or a small labelled dev set (nDCG@10), general similarity on STS (Spearman) and
general retrieval on a small BEIR set (nDCG@10).

>>> ev = labelled_dev_evaluator(Path("../shared/data/scifact"), "train")     # doctest: +SKIP
>>> score(ev, model)                                                          # doctest: +SKIP
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np

from embedops.beir import read_beir, read_sts
from embedops.checksums import sha256_text
from embedops.data import GENERAL_STS, general_path
from embedops.errors import UsageError
from embedops.trainer.pairs import TrainingPair


# How the dev score is computed: part of a training run's key, so a run restarted after the scoring
# changed starts afresh instead of resuming checkpoints whose dev curve was scored another way (a
# resumed run once kept binary scores of 100 beside graded ones and chose on the mix).
DEV_SCORING = "graded-gains-1"


@functools.cache
def _per_query_ir_class():
    """sentence-transformers' InformationRetrievalEvaluator, keeping each query's nDCG@10 of its last
    call in ``per_query`` (query id -> 0..1, computed as its own mean is) so a choice between two
    models can be judged query by query, not on the means alone. With ``grades`` (query id -> {doc
    id: relevance level}) its nDCG@10 uses the levels as gains, as trec_eval's ``ndcg_cut.10`` does
    (sentence-transformers' own counts every relevant document alike: on a set like TREC DL 2019,
    whose queries have dozens of judged passages, binary nDCG@10 sits near 99 and sees no drift)."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    class PerQueryRetrievalEvaluator(InformationRetrievalEvaluator):
        per_query: dict[str, float] = {}
        grades: dict[str, dict[str, int]] | None = None

        def compute_metrics(self, queries_result_list):
            per_query = {}
            for query_id, hits in zip(self.queries_ids, queries_result_list):
                top = sorted(hits, key=lambda x: (-x["score"], x["corpus_id"]))[:10]
                level = (self.grades or {}).get(query_id) or dict.fromkeys(self.relevant_docs[query_id], 1)
                gains = [level.get(hit["corpus_id"], 0) for hit in top]
                ideal = sorted(level.values(), reverse=True)
                per_query[query_id] = self.compute_dcg_at_k(gains, 10) / self.compute_dcg_at_k(ideal, 10)
            self.per_query = per_query
            metrics = super().compute_metrics(queries_result_list)
            metrics["ndcg@k"][10] = float(np.mean(list(per_query.values())))
            return metrics

    return PerQueryRetrievalEvaluator


def _retrieval_evaluator(queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, set[str]],
                         name: str = "domain", grades: dict[str, dict[str, int]] | None = None):
    """The retrieval score of the evaluators below: nDCG@10 (the primary metric; graded where
    ``grades`` are given) and friends, with each query's nDCG@10 kept for :func:`per_query_scores`."""
    evaluator = _per_query_ir_class()(queries, corpus, relevant, name=name, ndcg_at_k=[10], mrr_at_k=[10],
                                      accuracy_at_k=[1], precision_recall_at_k=[10], map_at_k=[10],
                                      show_progress_bar=False, batch_size=64)
    evaluator.grades = grades
    return evaluator


def domain_evaluator(held_out: list[TrainingPair], train: list[TrainingPair], max_corpus: int = 1000, seed: int = 0):
    """Retrieval on held-out queries (nDCG@10) over their positives and hard negatives, plus train
    positives as distractors up to ``max_corpus`` texts in all (it runs once per interpolation weight,
    so it must stay small: re-encoding every text seen would dominate the run on large pair sets).

    Graded where the pairs carry their qrels grade (``relevance``, kept by ``pairs import``): a
    query with dozens of relevant documents otherwise fills its top 10 with any of them and scores
    100 under every model (TREC DL 2019's queries did, for the base model and every trial), so the
    dev set could choose nothing. Pairs without a grade count 1, as binary nDCG does."""
    corpus: dict[str, str] = {}

    def cid(text: str) -> str:
        key = sha256_text(text)[:16]
        corpus[key] = text
        return key

    queries, relevant, grades = {}, {}, {}
    for p in held_out:
        qid = f"q{sha256_text(p.query)[:12]}"
        queries[qid] = p.query
        doc = cid(p.positive)
        relevant.setdefault(qid, set()).add(doc)
        level = grades.setdefault(qid, {})
        level[doc] = max(level.get(doc, 0), p.relevance or 1)
        for n in p.negatives:
            cid(n)
    distractors = sorted({p.positive for p in train} - set(corpus.values()))
    random.Random(seed).shuffle(distractors)
    for text in distractors[: max(0, max_corpus - len(corpus))]:
        cid(text)
    graded = any(p.relevance not in (None, 1) for p in held_out)
    return _retrieval_evaluator(queries, corpus, relevant, grades=grades if graded else None)


def labelled_dev_evaluator(beir_dir: Path, split: str = "dev", max_corpus: int = 2000, seed: int = 0):
    """Retrieval (nDCG@10) on a small labelled dev set: a BEIR directory's ``split`` queries over their
    relevant documents plus random distractors from its corpus, ``max_corpus`` texts in all.

    Generated pairs reward learning the generator's task: a held-out slice of them keeps rising as the
    model drifts from what users type, so ``interpolate="auto"`` picks alpha 1.0. A few dozen real
    queries choose alpha far better (docs/BENCHMARKS.md, SciFact). Used for scoring only, never trained on.
    """
    beir = read_beir(beir_dir, split)
    relevant = _judged(beir, f"{beir_dir}: no {split} query")
    return _retrieval_evaluator({q: beir.queries[q] for q in relevant}, _capped_corpus(beir, relevant, max_corpus, seed),
                                relevant, grades=_grades(beir, relevant))


def _capped_corpus(beir, relevant: dict[str, set[str]], max_corpus: int, seed: int) -> dict[str, str]:
    """Every relevant document, then random others of the corpus up to ``max_corpus`` texts in all."""
    docs = beir.documents or {}
    needed = set().union(*relevant.values())
    others = sorted(set(docs) - needed)
    random.Random(seed).shuffle(others)
    return {d: docs[d] for d in sorted(needed) + others[: max(0, max_corpus - len(needed))]}


BUNDLED_GENERAL_EVAL = GENERAL_STS


def bundled_general_eval() -> Path:
    """The general-ability set shipped inside embedops: 132 everyday-English sentence pairs (captions,
    news, questions) with similarity scores on the STS 0-5 scale, written for embedops and released
    with it under CC0 (``embedops/data/README.md``). It lets ``interpolate="auto"`` keep the general
    score within bounds without the user finding a benchmark; ``general_eval`` replaces it.
    The base all-MiniLM-L6-v2 scores 90.0 Spearman on it."""
    return general_path(GENERAL_STS)


def general_retrieval_evaluator(beir_dir: Path, max_corpus: int = 3000, seed: int = 0):
    """General *retrieval* (nDCG@10) on a BEIR directory: every query of its qrels over its relevant
    documents plus, where the corpus is larger, random others up to ``max_corpus`` texts in all (it
    runs once per alpha: a 5,000-passage set would cost minutes each time on a CPU; the forgetting
    gate judges the whole corpus). Relevance levels count as gains (graded nDCG@10, as the gate's).
    The default, ``bundled:general-definitions``, is 965 everyday words over 2,930 WordNet
    definitions (``bundled:general-retrieval``, 60 everyday questions over 129 passages, is
    saturated: 99.4 for the base model); a user's own set (``--general-retrieval``, or the
    pipeline's ``[guards] general``) is better."""
    beir = read_beir(beir_dir)
    relevant = _judged(beir, f"{beir_dir}: no query")
    return _retrieval_evaluator({q: beir.queries[q] for q in relevant}, _capped_corpus(beir, relevant, max_corpus, seed),
                                relevant, name="general", grades=_grades(beir, relevant))


def _grades(beir, relevant: dict[str, set[str]]) -> dict[str, dict[str, int]]:
    """Each judged query's relevance levels of its relevant documents (the gains of graded nDCG)."""
    return {q: {d: int(beir.qrels[q][d]) for d in docs} for q, docs in relevant.items()}


def _judged(beir, nobody: str) -> dict[str, set[str]]:
    """Each query's relevant documents that the corpus holds (queries with none left out); a set
    where no query has one is refused, ``nobody`` starting the message."""
    docs = beir.documents or {}
    relevant = {q: {d for d, g in rel.items() if g > 0 and d in docs} for q, rel in beir.qrels.items() if q in beir.queries}
    relevant = {q: r for q, r in relevant.items() if r}
    if not relevant:
        raise UsageError(f"{nobody} has a relevant document in the corpus")
    return relevant


def general_evaluator(sts_path: Path):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    s1, s2, scores = read_sts(sts_path)
    top = max(scores) or 1.0
    return EmbeddingSimilarityEvaluator(s1, s2, [s / top for s in scores], name="general", show_progress_bar=False)


def score(evaluator, model) -> float:
    if evaluator is None:
        return float("nan")
    result = evaluator(model)
    return 100 * float(result[evaluator.primary_metric])


def per_query_scores(evaluator, model) -> np.ndarray:
    """Each query's nDCG@10 (x100) under ``model``, in the evaluator's query order (so two calls pair
    up query by query); its mean is :func:`score`'s figure."""
    evaluator(model)
    return 100 * np.array([evaluator.per_query[q] for q in evaluator.queries_ids], dtype=float)
