"""The offline demo: its generated domain, its store safety, and one full run (the main job)."""

import json

import pytest

from helpers import StoreCli
from embedops.corpus import read_documents
from embedops.beir import read_qrels, read_queries
from embedops.app.demo import prepare_store
from embedops.app.demo_domain import SYSTEMS, write_demo_domain
from embedops.errors import UsageError
from embedops.trainer.pairs import read_pairs


def test_demo_domain_is_consistent_and_held_out_questions_are_unseen(tmp_path):
    dom = write_demo_domain(tmp_path / "d")
    docs = {d.id: d for d in read_documents(dom.root)}
    qrels = read_qrels(dom.root / "qrels" / "test.tsv")
    queries = read_queries(dom.root, only=set(qrels))
    pairs = read_pairs(dom.pairs, corpus={i: d.text for i, d in docs.items()})
    assert len(docs) == dom.documents and len(queries) == dom.held_out_queries and len(pairs) == dom.train_pairs
    assert all(d in docs for rel in qrels.values() for d in rel)
    assert not {p.query for p in pairs} & set(queries.values())
    # notes use codenames only; staff questions use plain names only
    for code, names in SYSTEMS:
        assert all(n not in d.text for d in docs.values() for n in names)
    assert write_demo_domain(tmp_path / "again").documents == dom.documents
    assert (tmp_path / "again" / "corpus.jsonl").read_text() == (dom.root / "corpus.jsonl").read_text()


def test_demo_never_wipes_a_directory_it_did_not_create(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(UsageError, match="not an embedops demo store"):
        prepare_store(precious)
    assert (precious / "thesis.tex").is_file()
    demo = prepare_store(tmp_path / "demo")
    (demo / "leftover").write_text("x")
    prepare_store(demo)  # an earlier demo store is recreated
    assert not (demo / "leftover").exists()


@pytest.mark.slow
def test_demo_runs_the_whole_lifecycle_offline(tmp_path):
    cli = StoreCli(str(tmp_path / "unused"))
    result = cli.runner.invoke(cli.app, ["demo", "--store", str(tmp_path / "demo"), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["report"]["verdict"] == "pass" and data["report"]["promoted"] is True
    assert data["after"]["ndcg@10"] > data["before"]["ndcg@10"] + 5
    assert data["after"]["recall@10"] > data["before"]["recall@10"]
    assert data["general"] and data["general"][0]["base"] - data["general"][0]["candidate"] <= 1.0
    assert data["rollback_ms"] > 0 and data["repromote_ms"] > 0
    status = StoreCli(str(tmp_path / "demo"))("alias", "history", "production", "--json")
    actions = [h["action"] for h in json.loads(status.stdout)]
    assert actions == ["promote", "promote", "rollback", "promote"]
