"""Indexes that keep int8 codes or sign bits (issue #36): built, checked and searched like float32."""

import numpy as np
import pytest

from embedops.errors import UsageError
from embedops.index import IndexSettings
from embedops.index.codecs import sign_bits
from embedops.index.footprints import footprint
from embedops.reembed.build import IndexBuild
from embedops.registry import Searcher
from reembed_helpers import TOPICS, make_docs

from helpers import write_jsonl

KINDS = {"int8": IndexSettings(vectors="int8"), "binary+int8": IndexSettings(vectors="binary"),
         "binary+float32": IndexSettings(vectors="binary", rescore="float32"),
         "binary": IndexSettings(vectors="binary", rescore="none")}


@pytest.fixture
def ops(reg, tmp_path):
    reg.corpora.add("ops", write_jsonl(tmp_path / "d.jsonl", make_docs(300)))
    return reg


def _queries(n=20):
    return [f"{TOPICS[i % len(TOPICS)]} incident {i}" for i in range(n)]


def _valid_binary_answer(hits, q, bits, rescored, k, depth):
    """Whether ``hits`` are the best ``k`` by ``rescored`` among some ``depth`` nearest by hamming
    distance (which ``depth`` documents is open among ties at the boundary distance)."""
    hamming = np.unpackbits(np.bitwise_xor(sign_bits(q[None, :]), bits), axis=1).sum(axis=1)
    boundary = np.sort(hamming)[depth - 1]
    served = [int(h.id.split("-")[1]) for h in hits]
    if any(hamming[i] > boundary for i in served):
        return False
    worst = min(rescored[i] for i in served)
    sure = np.flatnonzero((hamming < boundary) & (rescored > worst + 1e-6))
    return set(sure) <= set(served)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_stored_kind_answers_as_its_footprint_plan_said_it_would(ops, kind):
    """The index's search gives the ranking `index plan` simulated for that footprint from the
    float32 index (for sign bits, up to which documents tie at the candidates' boundary distance):
    what the plan measured is what a promotion serves."""
    full = IndexBuild(ops, "tiny@1", "ops", chunk_size=400).run().index
    small = IndexBuild(ops, "tiny@1", "ops", chunk_size=400, settings=KINDS[kind]).run().index
    assert small.index_id != full.index_id and small.settings.index.footprint == kind
    searcher = Searcher(ops)
    float_reader, reader = searcher.open(full.index_id), searcher.open(small.index_id)
    ids = sorted(float_reader.doc_ids())  # doc-0000 ... doc-0299: row i is doc i
    docs = np.vstack([float_reader.stored_vectors(ids)[i] for i in ids])
    queries = reader.encode(_queries())
    served = reader.search_vectors(queries, 10)
    assert all(len(h) == 10 and [x.score for x in h] == sorted((x.score for x in h), reverse=True) for h in served)
    plan = footprint(kind).prepare(docs)
    if kind == "int8":
        simulated, scores = plan.search(queries, 10)
        assert [[h.id for h in hits] for hits in served] == [[ids[j] for j in row] for row in simulated]
        assert np.allclose([[h.score for h in hits] for hits in served], scores, atol=1e-5)
        return
    for q, hits in zip(queries, served):
        rescored = {"binary+int8": getattr(plan, "int8", None), "binary+float32": plan.floats}.get(kind)
        scores = rescored @ q if rescored is not None else -np.unpackbits(
            np.bitwise_xor(sign_bits(q[None, :]), plan.bits), axis=1).sum(axis=1).astype(float)
        assert _valid_binary_answer(hits, q, plan.bits, scores, 10, 40 if rescored is not None else 10)


def test_int8_codes_are_calibrated_once_and_kept_with_the_index(ops):
    index = IndexBuild(ops, "tiny@1", "ops", chunk_size=100, settings=IndexSettings(vectors="int8")).run().index
    low, high = index.params["calibration"]
    assert len(low) == len(high) == 32 and all(lo < hi for lo, hi in zip(low, high))
    table = ops.store.open_table(index.table_name)
    assert str(table.schema.field("vector").type) == "fixed_size_list<item: int8>[32]"
    assert index.metrics["integrity"]["rows"] == 300 and index.metrics["integrity"]["stored"] == "int8"
    # stored vectors decode to unit vectors close to the float32 ones
    reader = Searcher(ops).open(index.index_id)
    exact = reader.encoder.encode(["kafka broker lag incident 3"])[0]
    hit = reader.search(["kafka broker lag incident 3"], 1)[0][0]
    assert float(np.dot(exact, reader.stored_vectors([hit.id])[hit.id])) == pytest.approx(hit.score, abs=1e-5)


def test_a_binary_index_keeps_sign_bits_and_its_rescoring_vectors(ops):
    index = IndexBuild(ops, "tiny@1", "ops", settings=IndexSettings(vectors="binary")).run().index
    table = ops.store.open_table(index.table_name)
    assert str(table.schema.field("vector").type) == "fixed_size_list<item: uint8>[4]"  # 32 bits
    assert str(table.schema.field("rescore").type) == "fixed_size_list<item: int8>[32]"


def test_a_binary_index_over_the_threshold_searches_lancedb_hamming_ivf_and_measures_its_recall(ops):
    settings = IndexSettings(vectors="binary", ann_threshold=200, partitions=4, nprobes=4)
    index = IndexBuild(ops, "tiny@1", "ops", settings=settings).run().index
    ann = index.metrics["integrity"]["ann"]
    assert ann["type"] == "IVF_FLAT" and 0.5 <= ann["recall@10_vs_exact"] <= 1.0
    hits = Searcher(ops).open(index.index_id).search(_queries(3), 5)
    assert all(len(h) == 5 for h in hits)


def test_a_truncated_index_of_a_model_not_trained_for_it_is_refused_unless_forced(ops):
    with pytest.raises(UsageError, match="tiny@1 was not trained with Matryoshka dimensions.*--force-dims"):
        IndexBuild(ops, "tiny@1", "ops", settings=IndexSettings(dims=16))
    index = IndexBuild(ops, "tiny@1", "ops", settings=IndexSettings(dims=16), force_dims=True).run().index
    table = ops.store.open_table(index.table_name)
    assert str(table.schema.field("vector").type) == "fixed_size_list<item: float>[16]"
    reader = Searcher(ops).open(index.index_id)
    query = reader.encoder.encode(["kafka lag"])[0][:16]
    hit = reader.search(["kafka lag"], 1)[0][0]
    assert float(np.dot(query / np.linalg.norm(query), reader.stored_vectors([hit.id])[hit.id])) \
        == pytest.approx(hit.score, abs=1e-4)


def test_an_int8_indexs_codes_are_read_once_per_table_however_many_readers_and_threads(ops, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from embedops.index.ann import TableSearch

    index = IndexBuild(ops, "tiny@1", "ops", settings=IndexSettings(vectors="int8")).run().index
    reads = []
    read = TableSearch._read_codes

    def counted(self):
        if self._codes is None:
            reads.append(self)
        return read(self)

    monkeypatch.setattr(TableSearch, "_read_codes", counted)
    searcher = Searcher(ops)
    with ThreadPoolExecutor(8) as pool:  # concurrent first searches of a fresh searcher
        answers = list(pool.map(lambda q: searcher.search(q, k=3, index_id=index.index_id).hits, _queries(16)))
    assert len(reads) == 1 and all(len(a) == 3 for a in answers)
    warmed = Searcher(ops).open(index.index_id, warm=True)  # the server opens a new index so: read before it serves
    assert len(reads) == 2
    warmed.search(_queries(2), 3)
    assert len(reads) == 2
