"""The Ray Data engine gives the same index as the local engine (local 2-worker cluster, CPU)."""

import numpy as np
import pytest

from helpers import write_jsonl
from embedops.registry import IndexStatus, Registry
from embedops.store import Store
from embedops.reembed.build import IndexBuild, sync_index
from embedops.reembed.ray_engine import RayEngine, shutdown
from reembed_helpers import make_docs


@pytest.fixture(scope="module")
def engine():
    yield RayEngine(workers=2, commit_every=2)
    shutdown()


def vectors_by_id(reg, rec):
    rows = reg.store.open_table(rec.table_name).to_arrow().to_pylist()
    return {r["id"]: np.asarray(r["vector"]) for r in rows}, [r["id"] for r in rows]


def test_ray_build_equals_local_build(reg, tmp_path, engine):
    reg.corpora.add("ops", write_jsonl(tmp_path / "docs.jsonl", make_docs(90)))
    local = IndexBuild(reg, "tiny@1", "ops", chunk_size=16).run().index
    seen = []
    report = IndexBuild(reg, "tiny@1", "ops", chunk_size=16, engine=engine,
                        on_progress=lambda d, t: seen.append((d, t))).run()
    ray_rec = reg.indexes.get(report.index.index_id)
    assert ray_rec.index_id != local.index_id and ray_rec.status is IndexStatus.READY
    assert ray_rec.metrics["engine"]["engine"] == "ray" and ray_rec.metrics["engine"]["workers"] == 2
    assert report.embedded == 90 and seen[-1] == (90, 90) and len(seen) >= 3  # one update per commit
    # CPU actors (no --gpus-per-worker): every row's provider is recorded with the index
    assert ray_rec.metrics["engine"]["actor_providers"] == {"OpenVINO:CPU": 90}  # fp32 on CPU actors
    assert report.providers_used == ["OpenVINO:CPU"]
    # the actors reuse the token ids the local build stored (embedops.reembed.tokens)
    assert (ray_rec.metrics["engine"]["token_ids_reused"], ray_rec.metrics["engine"]["texts_tokenized"]) == (90, 0)
    want, _ = vectors_by_id(reg, local)
    got, ids = vectors_by_id(reg, ray_rec)
    assert sorted(ids) == sorted(want) and len(ids) == len(set(ids))
    assert max(float(np.abs(got[i] - want[i]).max()) for i in want) < 1e-5

    # LanceDB's own writes (catch-up after a corpus change) work on the table the actors wrote
    docs = make_docs(90)[1:] + make_docs(5, seed=9, prefix="new")  # one deleted, five added
    reg.corpora.add("ops", write_jsonl(tmp_path / "more.jsonl", docs), replace=True)
    synced = sync_index(reg, ray_rec.index_id)
    assert synced.embedded == 5 and synced.deleted == 1 and synced.index.doc_count == 94


def test_interrupted_ray_build_on_an_s3_store_resumes_without_duplicates(s3_uri, tiny_model_dir, tmp_path, engine):
    reg = Registry(Store.open(s3_uri))
    reg.models.register("tiny", tiny_model_dir)
    reg.corpora.add("ops", write_jsonl(tmp_path / "docs.jsonl", make_docs(64)))

    def crash(embedded):
        raise KeyboardInterrupt("simulated crash after the first commit")

    with pytest.raises(KeyboardInterrupt):
        IndexBuild(reg, "tiny@1", "ops", chunk_size=8, engine=engine, after_chunk=crash).run()
    [partial] = reg.indexes.list()
    assert partial.status is IndexStatus.BUILDING
    committed = reg.store.open_table(partial.table_name).count_rows()
    assert 0 < committed < 64
    report = IndexBuild(reg, "tiny@1", "ops", chunk_size=8, engine=engine).run()
    assert report.index.index_id == partial.index_id and report.resumed_from == committed
    _, ids = vectors_by_id(reg, report.index)
    assert sorted(ids) == sorted(d["_id"] for d in make_docs(64))
