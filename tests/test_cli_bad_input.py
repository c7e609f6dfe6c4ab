"""Every command's bad input: exit code 2, one clear error on stderr, no traceback, nothing written."""

import pytest

from helpers import SAMPLE_DOCS, write_jsonl


@pytest.fixture
def setup(cli, tmp_path, tiny_model_dir):
    docs = write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS)
    cli("corpus", "add", "ops", docs)
    cli("model", "register", "tiny", tiny_model_dir)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"query": "q", "doc_id": "d1"}])
    toml = tmp_path / "pipeline.toml"
    toml.write_text("[corpus]\nname = 'ops'\n")  # no path, no pairs: a config that cannot run
    return {"docs": docs, "pairs": pairs, "toml": toml, "missing": tmp_path / "no-such-file.jsonl",
            "out": tmp_path / "out.jsonl", "dir": tmp_path}


BAD = [
    ("model", "show", "ghost@1"),
    ("model", "verify", "ghost@1"),
    ("model", "export-onnx", "ghost@1"),
    ("model", "register", "tiny", "{missing}"),
    ("corpus", "add", "ops", "{missing}"),
    ("corpus", "add", "bad/name", "{docs}"),
    ("index", "build", "ghost@1", "--corpus", "ops"),
    ("index", "build", "tiny@1", "--corpus", "nope"),
    ("index", "show", "nosuch"),
    ("search", "x", "--index", "nosuch"),
    ("search", "x", "-k", "0"),
    ("promote", "nosuch", "--force", "--reason", "typo"),
    ("guard", "nosuch", "--gold", "{dir}"),
    ("alias", "show", "nosuch"),
    ("canary", "start", "nosuch", "--percent", "10"),
    ("canary", "start", "nosuch", "--percent", "500"),
    ("pairs", "import", "{missing}", "--out", "{out}"),
    ("pairs", "mine", "{missing}", "-m", "tiny@1", "-c", "ops", "-o", "{out}"),
    ("pairs", "mine", "{pairs}", "-m", "ghost@1", "-c", "ops", "-o", "{out}"),
    ("train", "--base", "ghost@1", "--pairs", "{pairs}"),
    ("train", "--base", "tiny@1", "--pairs", "{missing}"),
    ("train", "--base", "tiny@1", "--pairs", "{pairs}", "--corpus", "ops", "--budget", "0"),
    ("train", "--base", "tiny@1", "--pairs", "{pairs}", "--corpus", "ops", "--loss", "triplett"),
    ("pipeline", "run", "{missing}"),
    ("pipeline", "run", "{toml}"),
    ("serve", "--shadow-fraction", "2"),
]


def _written(cli, root):
    """What a command could have written: the files beside the store, and the rows of every table in
    it (reading a registry table the store never used creates it empty: that writes no record)."""
    from helpers import tree_snapshot
    from embedops.store import Store

    store = Store.open(cli.store_uri)
    rows = {name: store.db.open_table(name).count_rows() for name in store.table_names()}
    beside = {k: v for k, v in tree_snapshot(root).items() if not k.startswith("store/")}
    return beside, {name: n for name, n in rows.items() if n}


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_input_exits_2_with_one_error_and_no_traceback(setup, cli, args):
    before = _written(cli, setup["dir"])
    result = cli(*[a.format(**setup) for a in args], expect=None)
    shown = result.stdout + result.stderr
    assert result.exit_code == 2, shown
    assert "Traceback" not in shown and result.exception is None or isinstance(result.exception, SystemExit), shown
    assert result.stderr.startswith("error: ") and "╭" not in result.stderr, result.stderr
    assert _written(cli, setup["dir"]) == before  # nothing written, to the store or beside it
