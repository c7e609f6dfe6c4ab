"""The general sets bundled with embedops: found by name wherever a general set is taken, and big
enough to judge under the default guard policy."""

import pytest

from embedops.data import GENERAL_RETRIEVAL, GENERAL_STS, general_path
from embedops.errors import UsageError
from embedops.guards.forgetting import read_general
from embedops.guards.policy import Policy


def test_bundled_sets_pass_the_guards_own_evidence_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDOPS_CACHE_DIR", str(tmp_path / "cache"))
    built = general_path(GENERAL_RETRIEVAL)  # the shipped JSON as a BEIR directory, in the cache, once
    assert built.parent == tmp_path / "cache" / "bundled" and (built / "qrels" / "test.tsv").is_file()
    assert general_path(GENERAL_RETRIEVAL) == built
    sts = read_general(GENERAL_STS, Policy())
    retrieval = read_general(GENERAL_RETRIEVAL, Policy())
    assert (sts.kind, sts.size) == ("sts", 132)
    assert (retrieval.kind, retrieval.size) == ("beir", 60)
    docs, queries, qrels = retrieval.data
    assert len(docs) == 129 and all(len(rel) == 1 for rel in qrels.values())
    # every question has a near miss on its subject: more passages than questions
    assert len(docs) > 2 * len(queries)


def test_an_unknown_bundled_name_lists_the_known_ones():
    with pytest.raises(UsageError, match="bundled:general-sts, bundled:general-retrieval"):
        general_path("bundled:general-typo")
    assert str(general_path("mine/sts.tsv")) == "mine/sts.tsv"


@pytest.mark.full_definitions_rail
def test_the_definitions_rail_asks_about_words_whose_definitions_do_not_name_them(tmp_path, monkeypatch):
    """The default retrieval rail: one definition relevant per word, a near miss and unrelated ones
    in the corpus, no definition that gives the word away, and WordNet's notice shipped beside it."""
    import json
    from importlib import resources

    from embedops.data import GENERAL_DEFINITIONS

    monkeypatch.setenv("EMBEDOPS_CACHE_DIR", str(tmp_path / "cache"))
    rail = read_general(GENERAL_DEFINITIONS, Policy())
    docs, queries, qrels = rail.data
    assert rail.kind == "beir" and rail.size == len(queries) >= 900
    assert all(len(rel) == 1 for rel in qrels.values()) and len(docs) >= 2 * len(queries) + 900
    spec = json.loads((resources.files("embedops.data") / "general-definitions.json").read_text(encoding="utf-8"))
    for item in spec["items"]:
        word = item["question"].removeprefix("what does ").removesuffix(" mean")
        assert word.lower() not in item["answer"].lower() and item["answer"] != item["near_miss"]
    notice = (resources.files("embedops.data") / "README.md").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice
