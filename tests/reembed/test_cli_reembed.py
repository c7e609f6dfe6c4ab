"""In-process CLI tests of the re-embedding commands."""

import json

import pytest

from helpers import write_jsonl
from embedops.encoding.encoder import gpu_present
from reembed_helpers import make_docs


def test_build_promote_search_shadow_rollback_via_cli(reg, docs_file, tiny_model_b, cli_for, tmp_path):
    cli = cli_for(reg)
    cli("corpus", "add", "ops", docs_file)
    export = json.loads(cli("model", "export-onnx", "tiny@1", "--json").stdout)
    assert export["kind"] == "onnx-fp32" and export["meta"]["parity"]["min_cosine"] >= 0.999
    first = cli("index", "build", "tiny@1", "--corpus", "ops").stdout.strip()
    assert "embedded 40 documents" in cli.runner.invoke(cli.app, ["--store", cli.store_uri, "--create", "index", "build", "tiny@1", "--corpus", "ops"]).stderr
    listed = json.loads(cli("index", "list", "--json").stdout)
    assert first in [i["index_id"] for i in listed] and all(i["status"] == "ready" for i in listed)

    refused = cli("promote", first, expect=1)
    assert "no guard report" in refused.stderr and "--force --reason" in refused.stderr
    assert "--reason" in cli("promote", first, "--force", expect=2).stderr
    assert "production -> " in cli("promote", first, "--force", "--reason", "initial").stdout
    hit = json.loads(cli("search", "kafka lag", "-k", "3", "--json").stdout)
    assert hit["index_id"] == first and len(hit["hits"]) == 3
    assert first in cli("search", "kafka lag", "-k", "2").stdout

    cli("model", "register", "tiny", tiny_model_b)
    second = cli("index", "build", "tiny@2", "--corpus", "ops").stdout.strip()
    docs = make_docs(40)
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": f"q{i}", "text": docs[i]["text"][:50]} for i in range(0, 40, 5)])
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{docs[i]['_id']}\t1\n" for i in range(0, 40, 5)))
    report = json.loads(cli("shadow", second, "--queries", queries, "--qrels", qrels, "-k", "5", "--json").stdout)
    assert report["production"] == first and report["candidate"] == second and report["queries"] == 8
    assert "ndcg@10" in report["metrics"]["candidate"]
    assert "overlap@5" in cli("shadow", second, "--queries", queries, "-k", "5").stdout

    conflict = cli("promote", second, "--expect", "not-the-current-one", "--force", "--reason", "x", expect=3)
    assert "not the expected" in conflict.stderr
    cli("promote", second, "--expect", first, "--force", "--reason", "better")
    assert "rolled back" in cli("rollback", "--reason", "test").stdout
    assert json.loads(cli("alias", "show", "production", "--json").stdout)["value"] == first
    history = [e["action"] for e in json.loads(cli("history", "--json").stdout)]
    assert history.count("promote.override") == 2 and "alias.rollback" in history

    # retire / drop protections
    assert "points at it" in cli("index", "retire", first, expect=1).stderr
    assert "rollback target" in cli("index", "retire", second, expect=1).stderr


def test_sync_command_updates_aliased_indexes(reg, docs_file, cli_for, tmp_path):
    cli = cli_for(reg)
    cli("corpus", "add", "ops", docs_file)
    idx = cli("index", "build", "tiny@1", "--corpus", "ops").stdout.strip()
    cli("promote", idx, "--force", "--reason", "first")
    assert "no aliased" not in cli("index", "sync").stdout
    cli("corpus", "add", "ops", write_jsonl(tmp_path / "v2.jsonl", make_docs(38) + make_docs(1, seed=4, prefix="n")),
        "--replace")
    (report,) = json.loads(cli("index", "sync", "--json").stdout)
    assert report["index_id"] == idx and (report["embedded"], report["deleted"]) == (1, 2)
    assert json.loads(cli("search", "kafka", "--json").stdout)["index_id"] == idx


def test_build_of_unknown_corpus_or_model_fails_clearly(reg, cli_for):
    cli = cli_for(reg)
    assert "no corpus named 'nope'" in cli("index", "build", "tiny@1", "--corpus", "nope", expect=2).stderr
    assert "no model version 'ghost@1'" in cli("index", "build", "ghost@1", "--corpus", "nope", expect=2).stderr
    assert "alias 'production' does not point" in cli("search", "x", expect=2).stderr


@pytest.mark.skipif(gpu_present(), reason="on a GPU machine --device cuda is expected to work")
def test_build_on_cuda_without_a_gpu_fails_instead_of_falling_back(reg, docs_file, cli_for):
    cli = cli_for(reg)
    cli("corpus", "add", "ops", str(docs_file))
    out = cli("index", "build", "tiny@1", "--corpus", "ops", "--device", "cuda", expect=2)
    assert "--device cpu" in out.stderr and reg.indexes.list() == []  # nothing half-built
    built = cli("index", "build", "tiny@1", "--corpus", "ops", "--device", "cpu", "--json")
    assert json.loads(built.stdout)["providers"] == ["OpenVINO:CPU"]  # fp32 on the CPU: OpenVINO's runtime
    onnxruntime = cli("index", "build", "tiny@1", "--corpus", "ops", "--device", "cpu", "--runtime", "onnxruntime",
                      "--json")
    assert json.loads(onnxruntime.stdout)["providers"] == ["CPUExecutionProvider"]
