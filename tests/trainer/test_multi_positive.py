"""Multi-positive data: a query with several relevant documents, documents relevant to several
queries. The loss must never see a known positive of a row's query as a negative: not in its
top-up negatives, and not as another row's text in its batch (what MNRL takes as in-batch negatives)."""

import random

import pytest
from datasets import Dataset

from embedops.trainer.batching import KnownPositiveBatchSampler, conflict, known_positives
from embedops.trainer.dataset import even_negatives as _even_negatives
from embedops.trainer.pairs import TrainingPair


def multi_positive_rows(seed: int, queries: int = 40, docs: int = 30):
    """Each query relevant to 1-4 of the documents, drawn from a small pool: most documents are
    relevant to several queries (as on a graded, densely judged domain)."""
    rng = random.Random(seed)
    return [(f"query {q}", f"document {d}") for q in range(queries) for d in rng.sample(range(docs), rng.randint(1, 4))]


def violations(batches, rows, known):
    return [(i, j) for b in batches for i in b for j in b if i != j and conflict(rows[i], rows[j], known)]


@pytest.mark.parametrize("seed", range(4))
def test_no_batch_holds_a_known_positive_of_a_rows_query_and_every_row_is_used(seed):
    pairs = multi_positive_rows(seed)
    known = known_positives(pairs)
    data = Dataset.from_dict({"anchor": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    rows = [(q, [p]) for q, p in pairs]
    ours = KnownPositiveBatchSampler(data, batch_size=8, drop_last=False, known=known, seed=seed)
    for epoch in range(3):
        ours.set_epoch(epoch)
        batches = list(ours)
        assert violations(batches, rows, known) == []
        assert sorted(i for b in batches for i in b) == list(range(len(pairs)))  # each row once an epoch
    # the data exercises the problem: sentence-transformers' no-duplicates batches break the rule
    try:
        from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    except ImportError:
        from sentence_transformers.sampler import NoDuplicatesBatchSampler
    theirs = list(NoDuplicatesBatchSampler(data, batch_size=8, drop_last=False, seed=seed))
    assert violations(theirs, rows, known)


def test_top_up_negatives_are_never_a_positive_of_the_same_query():
    pairs = [TrainingPair("q1", "A"), TrainingPair("q1", "B"),  # q1 has two positives, no mined negatives
             TrainingPair("q2", "C", negatives=["X", "Y"])]
    for seed in range(20):
        n_neg, out, padded = _even_negatives(pairs, random.Random(seed))
        assert n_neg == 2 and padded == 2
        for p in out[:2]:
            assert len(p.negatives) == 2 and not {"A", "B"} & set(p.negatives)  # only C is allowed
    with pytest.raises(Exception, match="nothing to use as its negative"):
        _even_negatives([TrainingPair("q", "A"), TrainingPair("q", "B", negatives=["N"])], random.Random(0),
                        known_positives([("q", "A"), ("q", "B"), ("q", "N")]))


@pytest.mark.slow
def test_training_draws_its_batches_without_known_positives(reg, monkeypatch):
    from embedops.trainer.train import TrainConfig, train

    seen = []
    original = KnownPositiveBatchSampler.__iter__

    def recording(self):  # the batches the trainer really drew
        for b in original(self):
            seen.append(([self.rows[i] for i in b], self.known))
            yield b

    monkeypatch.setattr(KnownPositiveBatchSampler, "__iter__", recording)
    pairs = [TrainingPair(q, f"{d} runbook text") for q, d in multi_positive_rows(1, 12, 8)]
    result = train(reg, "tiny@1", pairs, config=TrainConfig(epochs=1, batch_size=4, lr=1e-4, eval_fraction=0.0,
                                                            interpolate=None))
    assert result.model.ref == "tiny@2" and len(seen) >= len(pairs) // 4
    assert sum(len(rows) for rows, _ in seen) == len(pairs)
    for rows, known in seen:
        assert not any(conflict(a, b, known) for a in rows for b in rows if a is not b)


def test_import_keeps_graded_relevance_and_a_bad_grade_names_the_line(tmp_path):
    from helpers import write_jsonl
    from embedops.errors import InputError
    from embedops.trainer.pairs import import_beir, read_pairs, write_pairs

    root = tmp_path / "beir"
    write_jsonl(root / "corpus.jsonl", [{"_id": f"d{i}", "text": f"doc {i}"} for i in range(3)])
    write_jsonl(root / "queries.jsonl", [{"_id": "q0", "text": "first"}, {"_id": "q1", "text": "second"}])
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t2\nq0\td1\t1\nq0\td2\t0\nq1\td2\t1\n")
    pairs = import_beir(root)
    assert [(p.doc_id, p.relevance) for p in pairs] == [("d0", 2), ("d1", 1), ("d2", 1)]  # grade 0: no pair
    again = read_pairs(write_pairs(tmp_path / "pairs.jsonl", pairs))
    assert [p.relevance for p in again] == [2, 1, 1]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"query": "q", "text": "t", "relevance": 1},
                                               {"query": "q", "text": "t", "relevance": "high"},
                                               {"query": "q", "text": "t", "relevance": 0}])
    with pytest.raises(InputError) as info:
        read_pairs(bad)
    assert ":2: field 'relevance'" in str(info.value) and ":3: field 'relevance'" in str(info.value)


def test_mining_reports_known_and_probable_positives_per_query(cli, tiny_model_dir, tmp_path):
    import json

    from helpers import write_jsonl
    from test_mining_and_training import TOPICS

    docs = [{"_id": k, "title": k.upper(), "text": v} for k, v in TOPICS.items()]
    cli("corpus", "add", "ops", write_jsonl(tmp_path / "docs.jsonl", docs))
    cli("model", "register", "tiny", tiny_model_dir)
    # one query with every document relevant but one: its candidates are almost all known positives
    crowded = [{"query": "everything on call", "doc_id": k} for k in list(TOPICS)[:-1]]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", crowded + [{"query": "orders lag", "doc_id": "kafka"}])
    res = cli("pairs", "mine", pairs, "-m", "tiny@1", "-c", "ops", "-o", tmp_path / "mined.jsonl", "-n", "1",
              "--margin", "2", "--report", tmp_path / "mining.jsonl")
    per_query = {q["query"]: q for q in map(json.loads, (tmp_path / "mining.jsonl").read_text().splitlines())}
    busy = per_query["everything on call"]
    assert busy["pairs"] == len(TOPICS) - 1 and busy["known_positives"] > busy["negatives"]
    assert busy["positive_share"] > 0.5 and per_query["orders lag"]["known_positives"] <= 1  # its own, at most
    words = " ".join(res.stdout.split())
    assert "1 of 2 queries had more known or probable positives than negatives" in words
    assert "'everything on call'" in words and "mining.jsonl" in words
    mined = [json.loads(l) for l in (tmp_path / "mined.jsonl").read_text().splitlines()]
    flags = "FLAGR kill switch"  # the one document not relevant to the crowded query is its only negative
    assert all(m["negatives"] and flags in m["negatives"][0] for m in mined if m["query"] == "everything on call")
