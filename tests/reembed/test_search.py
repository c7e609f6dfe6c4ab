import threading

import pytest

from embedops.index import IndexSettings

from embedops.errors import AliasConflictError, IndexStateError, NotFoundError
from embedops.reembed.build import IndexBuild
from embedops.guards.shadow import rank_correlation, run_shadow
from embedops.registry import Searcher
from reembed_helpers import TOPICS, make_docs


@pytest.fixture
def two_indexes(reg, docs_file, tiny_model_b):
    reg.corpora.add("ops", docs_file)
    reg.models.register("tiny", tiny_model_b)  # tiny@2: different weights, different rankings
    a = IndexBuild(reg, "tiny@1", "ops").run().index
    b = IndexBuild(reg, "tiny@2", "ops").run().index
    return reg, a, b


def test_search_follows_the_alias_without_restart(two_indexes):
    reg, a, b = two_indexes
    searcher = Searcher(reg)
    with pytest.raises(NotFoundError, match="promote an index first"):
        searcher.search("kafka lag")
    reg.promote(a.index_id, reason="first", override=True)
    first = searcher.search("kafka lag", k=5)
    assert first.index_id == a.index_id and first.model_ref == "tiny@1" and len(first.hits) == 5
    reg.promote(b.index_id, reason="second", override=True)
    assert searcher.search("kafka lag", k=5).index_id == b.index_id
    reg.rollback(reason="back")
    assert searcher.search("kafka lag", k=5).index_id == a.index_id
    top = searcher.search("kafka lag", k=3, with_titles=True).hits
    assert all(h.title for h in top) and top[0].score >= top[-1].score


def test_reader_loop_sees_no_failures_and_no_mixed_results_during_promote_and_rollback(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, reason="start", override=True)
    searcher = Searcher(reg)
    queries = [f"{t} issue" for t in TOPICS]
    expected = {
        idx.index_id: {q: [h.id for h in searcher.search(q, 5, index_id=idx.index_id).hits] for q in queries}
        for idx in (a, b)
    }
    assert expected[a.index_id] != expected[b.index_id]
    failures, results, stop = [], [], threading.Event()

    def reader():
        n = 0
        while not stop.is_set() or n < 20:
            q = queries[n % len(queries)]
            try:
                r = searcher.search(q, 5)
                results.append((r.index_id, q, [h.id for h in r.hits]))
            except Exception as exc:  # any failure is a test failure
                failures.append(repr(exc))
            n += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(6):
        if i % 2 == 0:
            reg.promote(b.index_id, reason=f"switch {i}", override=True)
        else:
            reg.rollback(reason=f"rollback {i}")
        threading.Event().wait(0.05)
    stop.set()
    for t in threads:
        t.join(60)
    assert failures == []
    assert {idx for idx, _, _ in results} == {a.index_id, b.index_id}
    for idx, q, hits in results:
        assert hits == expected[idx][q]  # wholly from the index the response names


def test_promote_requires_ready_index_and_honours_expect(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, reason="first", override=True)
    with pytest.raises(AliasConflictError):
        reg.promote(b.index_id, expect="some-other-index", reason="stale script", override=True)
    assert reg.aliases.current("production") == a.index_id
    reg.promote(b.index_id, expect=a.index_id, reason="scripted", override=True)
    rec = reg.indexes.create("tiny@1", "ops")
    with pytest.raises(IndexStateError, match="building"):
        reg.promote(rec.index_id, reason="not ready", override=True)


def test_protected_indexes_cannot_be_retired_or_dropped(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, reason="first", override=True)
    reg.promote(b.index_id, reason="second", override=True)
    with pytest.raises(IndexStateError, match="alias 'production' points at it"):
        reg.retire(b.index_id)
    with pytest.raises(IndexStateError, match="rollback target"):
        reg.retire(a.index_id)
    third = IndexBuild(reg, "tiny@1", "ops", precision="fp32").run().index
    with pytest.raises(IndexStateError, match="retire it first"):
        reg.drop(third.index_id)
    reg.retire(third.index_id, reason="unused")
    reg.drop(third.index_id)
    assert third.index_id not in {i.index_id for i in reg.indexes.list()}
    assert not reg.store.has_table(third.table_name)


def test_shadow_compares_both_sides(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, reason="first", override=True)
    docs = make_docs(40)
    queries = {f"q{i}": docs[i]["text"][:60] for i in range(0, 40, 4)}
    qrels = {f"q{i}": {docs[i]["_id"]: 1} for i in range(0, 40, 4)}
    searcher = Searcher(reg)
    same = run_shadow(searcher, a.index_id, queries, qrels=qrels, k=5)
    assert same.overlap_at_k == 1.0 and same.rank_correlation == pytest.approx(1.0)
    assert same.metrics["production"] == same.metrics["candidate"] and same.movers == []
    diff = run_shadow(searcher, b.index_id, queries, qrels=qrels, k=5)
    assert diff.overlap_at_k < 1.0 and diff.queries == 10
    assert set(diff.metrics["candidate"]) == {"ndcg@10", "recall@5", "mrr@10"}
    assert set(diff.latency_ms["production"]) == {"p50", "p95"}
    for m in diff.movers:
        assert m["delta"] == pytest.approx(m["candidate_ndcg@10"] - m["production_ndcg@10"])
    no_qrels = run_shadow(searcher, b.index_id, queries, k=5)
    assert no_qrels.metrics == {} and "overlap@5" in no_qrels.movers[0]


def test_rank_correlation():
    assert rank_correlation(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert rank_correlation(["a", "b", "c"], ["c", "b", "a"]) < 0
    assert -1.0 <= rank_correlation(["a", "b"], ["x", "y"]) <= 1.0


def test_stored_vectors_are_what_a_search_scores_and_unknown_ids_are_left_out(two_indexes):
    import numpy as np

    reg, a, _ = two_indexes
    searcher = Searcher(reg)
    hit = searcher.search("kafka lag", k=1, index_id=a.index_id).hits[0]
    stored = searcher.stored_vectors(a, [hit.id, "no-such-doc"])
    assert list(stored) == [hit.id]
    query = searcher.encoder_for(a).encode(["kafka lag"])[0]
    assert float(np.dot(query, stored[hit.id])) == pytest.approx(hit.score, abs=1e-4)


@pytest.mark.parametrize("ann", [False, True], ids=["flat", "ivf-pq"])
def test_several_query_vectors_searched_at_once_get_what_each_gets_alone(reg, tmp_path, ann):
    import numpy as np

    from helpers import write_jsonl

    reg.corpora.add("ops", write_jsonl(tmp_path / "big.jsonl", make_docs(600)))
    index = IndexBuild(reg, "tiny@1", "ops", chunk_size=256, settings=IndexSettings(ann_threshold=500 if ann else 10**6)).run().index
    assert bool(index.metrics["integrity"].get("ann")) is ann
    reader = Searcher(reg).open(index.index_id)
    queries = [f"{TOPICS[i % len(TOPICS)]} incident {i}" for i in range(12)]
    vectors = reader.encode(queries)
    together = reader.search_vectors(vectors, 7)  # one LanceDB query for all twelve
    alone = [reader.search_vectors(v[np.newaxis], 7)[0] for v in vectors]
    assert [[h.id for h in hs] for hs in together] == [[h.id for h in hs] for hs in alone]
    assert all(len(hs) == 7 for hs in together)
    assert np.allclose([h.score for hs in together for h in hs], [h.score for hs in alone for h in hs], atol=1e-6)
