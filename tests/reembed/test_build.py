import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from embedops.index import IndexSettings

from helpers import write_jsonl
from embedops.encoding import choose_providers
from embedops.errors import IndexStateError
from embedops.registry import IndexStatus
from embedops.index import SEARCH
from embedops.reembed.build import IndexBuild, IndexWriter, IntegrityError, sync_index
from embedops.registry import Searcher
from reembed_helpers import make_docs


def table_rows(reg, rec):
    return reg.store.open_table(rec.table_name).to_arrow().to_pylist()


def test_build_writes_every_document_once_and_marks_ready(reg, docs_file):
    reg.corpora.add("ops", docs_file)
    seen = []
    report = IndexBuild(reg, "tiny@1", "ops", chunk_size=8, on_progress=lambda d, t: seen.append((d, t))).run()
    rec = reg.indexes.get(report.index.index_id)
    assert rec.status is IndexStatus.READY and rec.doc_count == 40
    rows = table_rows(reg, rec)
    assert sorted(r["id"] for r in rows) == sorted(d["_id"] for d in make_docs(40))
    v = np.array([r["vector"] for r in rows])
    assert v.shape == (40, 32) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert seen[-1] == (40, 40) and len(seen) >= 5  # progress reported per chunk
    assert rec.metrics["integrity"]["rows"] == 40 and rec.table_version >= 1
    # what ran is stored: CUDA where onnxruntime-gpu sees a GPU, else OpenVINO's runtime (fp32 on the CPU)
    expected = "OpenVINO:CPU" if choose_providers() == ["CPUExecutionProvider"] else choose_providers()[0]
    assert rec.params["precision"] == "fp32" and rec.params["provider"] == expected
    assert report.providers_used == [expected] and rec.metrics["engine"] == {"engine": "local", "provider": expected}


def test_old_alias_keeps_serving_while_new_index_builds(reg, docs_file):
    reg.corpora.add("ops", docs_file)
    first = IndexBuild(reg, "tiny@1", "ops").run().index
    reg.promote(first.index_id, reason="first", override=True)
    during = []

    def look(_):
        during.append((reg.aliases.current("production"), reg.indexes.list()[-1].status))

    reg.models.register("tiny", reg.models.verified_path("tiny@1"))
    second = IndexBuild(reg, "tiny@2", "ops", chunk_size=10, after_chunk=look).run().index
    assert during and all(alias == first.index_id for alias, _ in during)
    assert all(status is IndexStatus.BUILDING for _, status in during)
    assert second.status is IndexStatus.READY and reg.aliases.current("production") == first.index_id


KILLED_BUILD = textwrap.dedent(
    """
    import sys, time
    from embedops.registry import Registry
    from embedops.store import Store
    from embedops.reembed.build import IndexBuild
    reg = Registry(Store.open(sys.argv[1]))
    def slow(n):
        print("chunk", n, flush=True)
        time.sleep(0.3)
    IndexBuild(reg, "tiny@1", "ops", precision="auto", chunk_size=4, after_chunk=slow).run()  # as the CLI builds
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_build_killed_with_sigkill_resumes_without_starting_over(reg, docs_file, cli_for):
    reg.corpora.add("ops", docs_file)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(reg.store.root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    chunks = 0
    deadline = time.time() + 120
    while chunks < 3 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail("build process ended early: " + proc.stderr.read())
        chunks += line.startswith("chunk")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (building,) = reg.indexes.list()
    assert building.status is IndexStatus.BUILDING
    already = len(table_rows(reg, building))
    assert 12 <= already < 40
    # rerunning the same command continues the same index
    result = cli_for(reg)("index", "build", "tiny@1", "--corpus", "ops", "--json")
    data = json.loads(result.stdout)
    assert data["index"]["index_id"] == building.index_id
    assert data["resumed_from"] == already and data["embedded"] == 40 - already
    ids = [r["id"] for r in table_rows(reg, reg.indexes.get(building.index_id))]
    assert len(ids) == len(set(ids)) == 40


@pytest.mark.slow
def test_concurrent_builds_of_the_same_inputs_end_with_one_complete_index(reg, docs_file, cli_for):
    reg.corpora.add("ops", docs_file)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(reg.store.root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = proc.stdout.readline()
    assert line.startswith("chunk"), proc.stderr.read()
    cli = cli_for(reg)
    refused = cli("index", "build", "tiny@1", "--corpus", "ops", expect=3)
    assert "is already running" in refused.stderr and "--wait" in refused.stderr
    waited = cli("index", "build", "tiny@1", "--corpus", "ops", "--wait")
    assert proc.wait(120) == 0 and "finished" in proc.stdout.read()
    (only,) = reg.indexes.list()
    assert only.status is IndexStatus.READY and waited.stdout.strip() == only.index_id
    assert "while this one waited" in " ".join(waited.stderr.split())
    ids = [r["id"] for r in table_rows(reg, only)]
    assert len(ids) == len(set(ids)) == 40


def test_changes_made_during_the_build_are_caught_up(reg, docs_file, tmp_path):
    reg.corpora.add("ops", docs_file)
    docs = make_docs(40)
    changed = [dict(d) for d in docs[5:]]  # 5 deleted
    changed[0]["text"] = "completely rewritten runbook about kafka"  # doc-0005 changed
    changed += make_docs(3, seed=9, prefix="new")  # 3 added
    edit = write_jsonl(tmp_path / "v2.jsonl", changed)
    done = []

    def edit_once(n):
        if not done:
            done.append(reg.corpora.add("ops", edit, replace=True))

    report = IndexBuild(reg, "tiny@1", "ops", chunk_size=10, after_chunk=edit_once).run()
    assert report.catch_up_rounds == 1 and report.deleted == 5
    rows = {r["id"]: r for r in table_rows(reg, report.index)}
    assert sorted(rows) == sorted(d["_id"] for d in changed)
    from embedops.corpus import content_hash

    assert rows["doc-0005"]["content_hash"] == content_hash(changed[0]["title"], changed[0]["text"])


def test_sync_embeds_only_what_changed(reg, docs_file, tmp_path):
    reg.corpora.add("ops", docs_file)
    index = IndexBuild(reg, "tiny@1", "ops").run().index
    before = {r["id"]: r["vector"] for r in table_rows(reg, index)}
    docs = make_docs(40)
    docs[3]["text"] = "new text for doc three"
    docs = docs[:-2] + make_docs(1, seed=3, prefix="extra")
    reg.corpora.add("ops", write_jsonl(tmp_path / "v2.jsonl", docs), replace=True)
    report = sync_index(reg, index.index_id)
    assert (report.embedded, report.deleted) == (2, 2)
    after = {r["id"]: r["vector"] for r in table_rows(reg, report.index)}
    assert sorted(after) == sorted(d["_id"] for d in docs)
    assert after["doc-0010"] == before["doc-0010"]  # untouched rows keep their vectors
    assert after["doc-0003"] != before["doc-0003"]
    assert reg.indexes.get(index.index_id).table_version == report.index.table_version > index.table_version
    assert sync_index(reg, index.index_id).embedded == 0


def test_the_ann_kind_and_search_settings_asked_for_are_built_recorded_and_searched_with(reg, tmp_path):
    reg.corpora.add("ops", write_jsonl(tmp_path / "big.jsonl", make_docs(600)))
    settings = IndexSettings(ann="ivf_hnsw_sq", ann_threshold=500, partitions=4, nprobes=3, refine_factor=2)
    report = IndexBuild(reg, "tiny@1", "ops", chunk_size=256, settings=settings).run()
    ann = report.index.metrics["integrity"]["ann"]
    assert (ann["type"], ann["partitions"], ann["search"]) == ("IVF_HNSW_SQ", 4, {"nprobes": 3, "refine_factor": 2})
    assert 0.3 <= ann["recall@10_vs_exact"] <= 1.0
    assert reg.indexes.get(report.index.index_id).settings.index == settings
    reader = Searcher(reg).open(report.index.index_id)
    assert reader.record.settings.index.search.nprobes == 3 and len(reader.search(["kafka lag"], 5)[0]) == 5


def test_large_corpus_gets_an_ann_index_with_measured_recall(reg, tmp_path):
    reg.corpora.add("ops", write_jsonl(tmp_path / "big.jsonl", make_docs(600)))
    report = IndexBuild(reg, "tiny@1", "ops", chunk_size=256, settings=IndexSettings(ann_threshold=500)).run()
    ann = report.index.metrics["integrity"]["ann"]
    assert ann["type"] == "IVF_PQ" and ann["sample"] == 100
    assert 0.5 <= ann["recall@10_vs_exact"] <= 1.0
    assert ann["search"] == SEARCH.to_dict()  # measured with the settings serving uses

    # the integrity gate measures again now, whatever the build record says
    from embedops.guards.integrity import integrity_gate
    from embedops.registry import Policy

    metrics = report.index.metrics
    metrics["integrity"]["ann"]["recall@10_vs_exact"] = 0.0
    reg.indexes.update(report.index.index_id, metrics=metrics)
    index = Searcher(reg).open(report.index.index_id)
    queries = np.asarray(index.encode(["postgres failover", "kafka lag"] * 5))
    gate = integrity_gate(index, reg.corpora.table("ops"), Policy(ann_min_recall=0.5, ann_sample=8), queries=queries)
    measured = gate.evidence["ann"]
    assert gate.status == "pass" and measured["measured"] == "at check time" and measured["sample"] == 8
    assert measured["recall@10_vs_exact"] >= 0.5 and measured["search"] == SEARCH.to_dict()
    strict = integrity_gate(index, reg.corpora.table("ops"), Policy(ann_min_recall=1.0), queries=queries)
    assert strict.status == ("pass" if strict.evidence["ann"]["recall@10_vs_exact"] == 1.0 else "fail")


def test_integrity_failure_marks_index_failed_and_not_ready(reg, docs_file, monkeypatch):
    reg.corpora.add("ops", docs_file)

    def broken(self, *a, **k):
        raise IntegrityError("index x failed integrity checks: 3 vectors contain NaN")

    monkeypatch.setattr(IndexWriter, "check_integrity", broken)
    with pytest.raises(IntegrityError, match="NaN"):
        IndexBuild(reg, "tiny@1", "ops").run()
    (rec,) = reg.indexes.list()
    assert rec.status is IndexStatus.FAILED
    with pytest.raises(IndexStateError):
        reg.promote(rec.index_id, reason="should not work", override=True)


def test_integrity_checks_catch_real_damage(reg, docs_file):
    reg.corpora.add("ops", docs_file)
    rec = IndexBuild(reg, "tiny@1", "ops").run().index
    tbl = reg.store.open_table(rec.table_name)
    tbl.delete("id = 'doc-0001'")
    from embedops.reembed.build import IndexWriter as W
    from embedops.encoding import OnnxEncoder
    from embedops.registry import ensure_export

    _, path = ensure_export(reg, "tiny@1")
    with pytest.raises(IntegrityError, match="row count 39 != corpus count 40"):
        W(reg, rec, OnnxEncoder(path)).check_integrity()


def test_auto_precision_is_bf16_only_on_a_bf16_cpu_whose_export_passes_parity(reg, docs_file, tiny_model_b,
                                                                              monkeypatch):
    import embedops.cpu
    from embedops.encoding import parity

    reg.corpora.add("ops", docs_file)
    real_cpu = embedops.cpu.cpu_features()
    rec = IndexBuild(reg, "tiny@1", "ops", precision="auto", device="cpu").run().index
    choice = rec.metrics["precision_choice"]
    if real_cpu.bf16:
        assert rec.params["precision"] == choice["precision"] == "bf16" and "min cosine" in choice["reason"]
        # a model whose bf16 export fails parity is built in fp32, and the index says why
        reg.models.register("other", tiny_model_b)
        monkeypatch.setitem(parity.PARITY_THRESHOLDS, "bf16", 1.01)
        other = IndexBuild(reg, "other@1", "ops", precision="auto", device="cpu").run().index
        assert other.params["precision"] == "fp32"
        assert other.metrics["precision_choice"]["reason"].startswith("fp32: the bf16 export failed parity")
        assert reg.artifacts.find("other@1", "onnx-bf16") is None  # nothing stored for the failed export
    else:
        assert rec.params["precision"] == "fp32" and "no AVX512-BF16 or AMX" in choice["reason"]
    # on a CPU without bf16 instructions, auto is fp32 whatever the model
    monkeypatch.setattr(embedops.cpu, "cpu_features", lambda: embedops.cpu.parse_cpuinfo("flags : avx2"))
    plain = IndexBuild(reg, "tiny@1", "ops", precision="auto", device="cpu").run().index
    assert plain.params["precision"] == "fp32" and "no AVX512-BF16 or AMX" in plain.metrics["precision_choice"]["reason"]
    assert IndexBuild(reg, "tiny@1", "ops", precision="fp32").run().index.metrics.get("precision_choice") is None
