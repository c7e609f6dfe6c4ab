"""Property-based tests (Hypothesis) of what the guards read: gold sets and general benchmarks,
degenerate ones included. Whatever the input, the readers raise a clear error or return evidence
that the gates can count; a degenerate input never turns into a pass."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedops.beir import read_qrels
from embedops.errors import InputError
from embedops.guards import Policy
from embedops.guards.domain import domain_gate
from embedops.guards.evidence import gold_evidence
from embedops.guards.forgetting import DegenerateBenchmark, read_general
from embedops.index import Hit

ids = st.text(alphabet="abcdef0123", min_size=1, max_size=3)
qrels_st = st.dictionaries(ids, st.dictionaries(ids, st.integers(-1, 3), min_size=1, max_size=4), max_size=12)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(qrels=qrels_st, present=st.sets(ids, max_size=20))
def test_gold_evidence_keeps_exactly_the_queries_that_can_tell_indexes_apart(qrels, present):
    queries = {q: f"text {q}" for q in qrels}
    ev = gold_evidence(queries, qrels, present)
    for q, judged in qrels.items():
        can_judge = any(r > 0 and d in present for d, r in judged.items())
        assert (q in ev.queries) == can_judge
    assert all(d in present for judged in ev.qrels.values() for d in judged)
    assert ev.relevant_judgements == sum(r > 0 for judged in qrels.values() for r in judged.values())
    assert ev.missing_judgements == sum(r > 0 and d not in present for judged in qrels.values() for d, r in judged.items())
    assert 0 <= ev.missing_share <= 1 and ev.judgeable <= ev.gold_queries == len(qrels)


class _Reader:
    """An index that holds ``docs`` and ranks them in a fixed order for every query."""

    def __init__(self, index_id, docs):
        self.index_id, self._docs = index_id, sorted(docs)
        self.record = SimpleNamespace(corpus="c", settings=SimpleNamespace(corpus_version=3), model_ref="m@1")

    def doc_ids(self):
        return set(self._docs)

    def search(self, texts, k):
        return [[Hit(d, 1.0 - i / 100) for i, d in enumerate(self._docs[:k])] for _ in texts]


@FAST
@given(qrels=qrels_st, docs=st.sets(ids, max_size=15), min_gold=st.integers(2, 20))
def test_the_domain_gate_never_passes_on_thin_or_missing_evidence(qrels, docs, min_gold):
    queries = {q: f"text {q}" for q in qrels}
    policy = Policy(min_gold_queries=min_gold, bootstrap_resamples=200)
    gate, _ = domain_gate(_Reader("cand", docs), _Reader("prod", docs), queries, qrels, policy)
    ev = gold_evidence(queries, qrels, set(docs))
    if ev.judgeable < min_gold or ev.missing_share > policy.max_missing_qrels:
        assert gate.status == "fail" and gate.value is None
        assert ("too little evidence" in gate.reason) or ("absent" in gate.reason and "version 3" in gate.reason)
    else:  # identical indexes: a lift of exactly zero, judged on the judgeable queries only
        assert gate.status == "pass" and gate.evidence["queries"] == ev.judgeable and gate.value == 0


lines = st.lists(st.text(alphabet="ab1\t .-x\u00e9", max_size=12), max_size=8)


@FAST
@given(rows=lines)
def test_any_qrels_file_reads_as_judgements_or_a_clear_input_error(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "qrels.tsv"
    path.write_text("\n".join(rows), encoding="utf-8")
    try:
        qrels = read_qrels(path)
    except InputError as exc:
        assert str(path) in str(exc)
    else:
        assert qrels and all(isinstance(r, int) for judged in qrels.values() for r in judged.values())


sts_rows = st.lists(st.tuples(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(3.0)),
                              st.text(alphabet="abc ", min_size=1, max_size=6),
                              st.text(alphabet="abc ", min_size=1, max_size=6)), max_size=30)


@FAST
@given(rows=sts_rows, min_pairs=st.integers(3, 25))
def test_an_sts_file_is_judged_only_with_enough_varied_finite_scores(rows, min_pairs, tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "sts.tsv"
    path.write_text("score\tsentence1\tsentence2\n" + "".join(f"{s!r}\t{a}\t{b}\n" for s, a, b in rows))
    scores = [s for s, _, _ in rows]
    try:
        general = read_general(path, Policy(min_sts_pairs=min_pairs))
    except DegenerateBenchmark as exc:
        assert str(path) in str(exc)
        assert len(rows) < min_pairs or len(set(scores)) <= 1 or any(s != s or abs(s) == float("inf") for s in scores)
    else:
        assert general.size == len(rows) >= min_pairs and len(set(scores)) > 1
        assert all(s == s and abs(s) != float("inf") for s in scores)


def test_a_beir_general_set_with_too_few_judged_queries_is_degenerate(tmp_path):
    from helpers import write_jsonl

    root = tmp_path / "beir"
    write_jsonl(root / "corpus.jsonl", [{"_id": f"d{i}", "text": f"doc {i}"} for i in range(5)])
    write_jsonl(root / "queries.jsonl", [{"_id": f"q{i}", "text": f"query {i}"} for i in range(30)])
    (root / "qrels").mkdir()
    # 30 queries, but only 3 judge a document the corpus holds
    (root / "qrels" / "test.tsv").write_text("".join(f"q{i}\t{'d1' if i < 3 else 'gone'}\t1\n" for i in range(30)))
    with pytest.raises(DegenerateBenchmark, match="3 queries have a relevant document in its corpus"):
        read_general(Path(root), Policy())
    assert read_general(Path(root), Policy(min_general_queries=3)).size == 3
