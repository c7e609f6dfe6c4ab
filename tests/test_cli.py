"""In-process tests of every foundation command (typer's CliRunner)."""

import json

import pytest

from embedops.registry import Registry
from embedops.store import Store
from helpers import tree_snapshot


def test_every_command_has_help_with_an_example(cli):
    from embedops.cli import app
    import typer.main

    group = typer.main.get_command(app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path

    paths = list(walk(group, []))
    assert ["corpus", "add"] in paths and ["status"] in paths
    for path in paths:
        result = cli(*path, "--help")
        assert "Example:" in result.stdout, path


def test_corpus_add_reports_counts_and_is_idempotent(cli, corpus_file):
    assert "5 added, 0 changed, 0 deleted, 0 unchanged" in cli("corpus", "add", "ops", corpus_file).stdout
    again = json.loads(cli("corpus", "add", "ops", corpus_file, "--json").stdout)
    assert (again["added"], again["unchanged"], again["documents"]) == (0, 5, 5)
    listed = json.loads(cli("corpus", "list", "--json").stdout)
    assert listed == [{"name": "ops", "documents": 5, "version": again["version"]}]
    assert "ops" in cli("corpus", "list").stdout


BAD_INPUTS = {
    "malformed line": (b'{"_id": "x", "text": "ok"}\n{"_id": "y", "text": "broken\n', ":2: malformed JSON"),
    "missing id": (b'{"_id": "x", "text": "ok"}\n{"text": "no id"}\n', ":2: field '_id': missing document id"),
    "duplicate id": (b'{"_id": "x", "text": "ok"}\n{"_id": "x", "text": "dup"}\n', ":2: field '_id': duplicate id 'x'"),
    "empty text": (b'{"_id": "x", "text": ""}\n', ":1: field 'text': missing or empty text"),
    "invalid utf-8": (b'{"_id": "x", "text": "ok"}\n{"_id": "y", "text": "\xff\xfe"}\n', ":2: invalid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_corpus_input_fails_naming_file_and_line_and_writes_nothing(cli, corpus_file, tmp_path, case):
    cli("corpus", "add", "ops", corpus_file)
    before = tree_snapshot(cli.store_uri)
    content, expected = BAD_INPUTS[case]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = cli("corpus", "add", "ops", bad, expect=2)
    assert f"{bad}{expected}" in result.stderr.replace("\n", "")
    assert tree_snapshot(cli.store_uri) == before
    # a new corpus from bad input is not created either
    cli("corpus", "add", "fresh", bad, expect=2)
    assert tree_snapshot(cli.store_uri) == before


def test_model_commands(cli, tiny_model_dir):
    assert cli("model", "register", "tiny", tiny_model_dir, "--param", "lr=0.001", "--notes", "n").stdout.strip() == "tiny@1"
    shown = json.loads(cli("model", "register", "tiny", tiny_model_dir, "--parent", "tiny@1", "--json").stdout)
    assert shown["ref"] == "tiny@2" and shown["parent"] == "tiny@1"
    listed = json.loads(cli("model", "list", "--json").stdout)
    assert [m["ref"] for m in listed] == ["tiny@1", "tiny@2"] and listed[0]["params"] == {"lr": 0.001}
    assert "tiny@2" in cli("model", "list").stdout
    assert "model.safetensors" in cli("model", "show", "tiny@1").stdout
    assert json.loads(cli("model", "show", "tiny", "--json").stdout)["version"] == 2
    assert "all" in cli("model", "verify", "tiny@1").stdout
    assert "no model version 'ghost@1'" in cli("model", "show", "ghost@1", expect=2).stderr
    assert "not a directory" in cli("model", "register", "bad", tiny_model_dir.parent / "nothing", expect=2).stderr
    assert "no modules.json" in cli("model", "register", "bad", tiny_model_dir.parent, expect=2).stderr
    assert "KEY=VALUE" in cli("model", "register", "x", tiny_model_dir, "--param", "oops", expect=2).stderr


def test_loading_a_model_draws_no_library_progress_bars(cli, corpus_file, tiny_model_dir):
    """transformers 5 draws tqdm bars while it loads or saves weights; command output has only ours."""
    cli("corpus", "add", "ops", corpus_file)
    cli("model", "register", "tiny", tiny_model_dir)
    built = cli("index", "build", "tiny@1", "--corpus", "ops")  # exports: loads the transformer
    shown = built.stdout + built.stderr
    assert built.stdout.strip().startswith("ops--tiny-v1--")
    for noise in ("Loading weights", "Writing model shards", "it/s]"):
        assert noise not in shown, shown


def test_model_verify_names_the_tampered_file(cli, tiny_model_dir):
    cli("model", "register", "tiny", tiny_model_dir)
    reg = Registry(Store.open(cli.store_uri))
    tokenizer = reg.models.artifact_path(reg.models.get("tiny@1")) / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNK2]"', 1))
    result = cli("model", "verify", "tiny@1", expect=1)
    assert "tokenizer.json: sha256" in result.stderr and "FAILED" in result.stderr
    data = json.loads(cli("model", "verify", "tiny@1", "--json", expect=1).stdout)
    assert data["ok"] is False and data["problems"][0].startswith("tokenizer.json")


def test_alias_history_status_commands(cli, corpus_file, tiny_model_dir):
    cli("corpus", "add", "ops", corpus_file)
    cli("model", "register", "tiny", tiny_model_dir)
    reg = Registry(Store.open(cli.store_uri))
    idx = reg.indexes.create("tiny@1", "ops")
    reg.aliases._switch("production", idx.index_id, reason="first index")
    assert "is not set" in cli("alias", "show", "shadow").stdout
    assert idx.index_id in cli("alias", "show", "production").stdout
    shown = json.loads(cli("alias", "show", "production", "--json").stdout)
    assert shown["value"] == idx.index_id and shown["previous"] is None
    hist = json.loads(cli("alias", "history", "production", "--json").stdout)
    assert [h["reason"] for h in hist] == ["first index"]
    assert "first index" in cli("alias", "history", "production").stdout
    assert [a["name"] for a in json.loads(cli("alias", "list", "--json").stdout)] == ["production"]
    events = json.loads(cli("history", "--json").stdout)
    assert [e["action"] for e in events] == ["corpus.add", "model.register", "index.create", "alias.set"]
    assert all(e["actor"] == "tester@ci" for e in events)
    assert "model.register" in cli("history").stdout
    status = json.loads(cli("status", "--json").stdout)
    assert status["aliases"][0]["value"] == idx.index_id
    assert [c["name"] for c in status["corpora"]] == ["ops"] and status["models"][0]["ref"] == "tiny@1"
    screen = cli("status").stdout
    for title in ("Aliases", "Corpora", "Models", "Indexes"):
        assert title in screen
    assert "tiny@1" in screen


def test_store_from_environment_and_invalid_names(tmp_path, corpus_file, monkeypatch):
    from typer.testing import CliRunner

    from embedops.cli import app

    monkeypatch.setenv("EMBEDOPS_STORE", str(tmp_path / "env-store"))
    assert CliRunner().invoke(app, ["init"]).exit_code == 0 and (tmp_path / "env-store" / "embedops.json").is_file()
    result = CliRunner().invoke(app, ["corpus", "add", "ops", str(corpus_file)])
    assert result.exit_code == 0
    result = CliRunner().invoke(app, ["corpus", "add", "bad/name", str(corpus_file)])
    assert result.exit_code == 2 and "invalid corpus name" in result.stderr


def test_store_too_new_is_refused_by_cli(cli, corpus_file):
    cli("corpus", "add", "ops", corpus_file)
    meta = Store.open(cli.store_uri).meta_path
    meta.write_text(json.dumps({"schema_version": 99}))
    assert "schema version 99" in cli("corpus", "list", expect=1).stderr



def test_override_is_audited_and_flagged_until_the_alias_moves_and_rollback_needs_no_report(cli, corpus_file, tiny_model_dir):
    cli("corpus", "add", "ops", corpus_file)
    cli("model", "register", "tiny", tiny_model_dir)
    a = cli("index", "build", "tiny@1", "--corpus", "ops").stdout.strip()
    b = cli("index", "build", "tiny@1", "--corpus", "ops").stdout.strip()
    assert "has no guard report" in cli("promote", a, expect=1).stderr
    assert "--force needs --reason" in cli("promote", a, "--force", expect=2).stderr
    assert cli("alias", "show", "production").stdout.startswith("alias 'production' is not set")

    assert "OVERRIDE" in cli("promote", a, "--force", "--reason", "first index").stdout
    status = cli("status")
    assert "OVERRIDE" in status.stdout and "WITHOUT a passing guard report" in " ".join(status.stderr.split())
    data = json.loads(cli("status", "--json").stdout)
    assert [(o["value"], o["reason"]) for o in data["overrides"]] == [(a, "first index")]
    history = cli("history")
    assert "(OVERRIDE)" in history.stdout and "promote.override" in history.stdout
    cli("promote", b, "--force", "--reason", "second")
    assert "rolled back" in cli("rollback", "--reason", "no report needed").stdout  # the alias moved again
    assert json.loads(cli("status", "--json").stdout)["overrides"] == []
    assert "WITHOUT" not in cli("status").stderr
    assert json.loads(cli("alias", "show", "production", "--json").stdout)["value"] == a


def test_cli_conventions_version_bad_k_exit_codes_and_search_latency(cli, corpus_file, tiny_model_dir):
    import re

    from embedops.reembed import IndexBuild
    from embedops.registry import Registry
    from embedops.store import Store

    assert re.fullmatch(r"embedops \S+\n", cli("--version").stdout)
    for args in ((), ("alias", "show"), ("train",), ("guard",)):  # flags take no value: no "<bool>" after them
        assert "<bool>" not in cli(*args, "--help").stdout and "--json" in cli("alias", "show", "--help").stdout
    bad_k = cli("search", "x", "-k", "0", expect=2)
    assert "Invalid value for '-k'" in bad_k.stderr and "Traceback" not in bad_k.stderr + bad_k.stdout
    assert "no alias 'nosuch'; aliases: production, shadow" in cli("alias", "show", "nosuch", expect=2).stderr
    assert "is not set" in cli("alias", "show", "shadow").stdout  # a well-known alias, not set yet: no error
    assert "no index" in cli("promote", "ops--tiny-v1--0000", "--force", "--reason", "x", expect=2).stderr.lower()
    reg = Registry(Store.open(cli.store_uri))
    reg.corpora.add("ops", corpus_file)
    reg.models.register("tiny", tiny_model_dir)
    reg.promote(IndexBuild(reg, "tiny@1", "ops").run().index.index_id, override=True, reason="first")
    shown = json.loads(cli("search", "postgres failover", "-k", "2", "--json").stdout)
    # the query's own time is reported apart from opening the index and the model in a new process
    assert shown["open_ms"] > 0 and shown["latency_ms"] > 0 and len(shown["hits"]) == 2
    assert "ms opening the index and model" in " ".join(cli("search", "kafka", "-k", "1").stdout.split())


def test_ids_print_whole_at_80_columns_and_quiet_prints_ids_only(cli, tmp_path, tiny_model_dir, monkeypatch):
    from helpers import SAMPLE_DOCS, write_jsonl
    from embedops.cli._common import out

    name = "customer-support-knowledge-base-emea"
    cli("corpus", "add", name, write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS))
    cli("model", "register", "minilm-support-tuned", tiny_model_dir)
    index_id = cli("index", "build", "minilm-support-tuned@1", "--corpus", name).stdout.strip().splitlines()[-1]
    assert len(index_id) > 40
    monkeypatch.setattr(out, "_width", 80)  # a terminal 80 columns wide
    listed = cli("index", "list").stdout
    assert index_id in listed  # on one line, whole: a user copies it into promote or guard
    assert max(len(line) for line in listed.splitlines()) <= 80  # the other columns folded to make room
    assert cli("index", "list", "-q").stdout == index_id + "\n"
    assert cli("model", "list", "--quiet").stdout == "minilm-support-tuned@1\n"
    assert cli("corpus", "list", "-q").stdout == name + "\n"


def test_a_missing_store_is_an_error_naming_the_path_unless_created_on_purpose(tmp_path):
    from helpers import StoreCli

    typo = tmp_path / "typo-store"
    strict = StoreCli(str(typo), create=False)
    refused = " ".join(strict("status", expect=2).stderr.split())
    assert f"no embedops store at {typo}" in refused and "init" in refused and "--create" in refused
    assert not typo.exists()  # nothing was made
    assert f"embedops store at {typo}" in strict("init").stdout and (typo / "embedops.json").is_file()
    assert strict("init").exit_code == 0  # again: nothing changes
    assert strict("corpus", "list", "-q").stdout == ""  # now it exists: every command opens it
    other = tmp_path / "made-by-create"
    assert StoreCli(str(other))("status").exit_code == 0 and (other / "embedops.json").is_file()  # --create
