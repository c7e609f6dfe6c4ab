"""A progressive bridge: re-embedded documents answered in the new space, the rest through the
adapter in the old one, merged on one score scale (issue #35)."""

import numpy as np
import pytest

from embedops.app.bridges import fit_bridge_adapter, open_bridge, open_progressive_bridge
from embedops.errors import UsageError
from embedops.reembed import IndexBuild
from embedops.registry import Searcher
from helpers import bridged_notes

QUERIES = ["kafka lag on orders", "replica promotion", "cert expiry", "disk pressure eviction", "dns ttl"]


@pytest.fixture
def rebuild(reg, tmp_path, tiny_model_b):
    """tiny@1's index (the old one), tiny@2's full index (the rebuild) and a procrustes adapter."""
    old = bridged_notes(reg, tmp_path, tiny_model_b, n=120)
    new = IndexBuild(reg, "tiny@2", "ops").run().index
    adapter = fit_bridge_adapter(reg, "tiny@2", old.index_id, kind="procrustes", sample=120)
    return old, new, adapter.adapter_id


def _ids(hits):
    return [[h.id for h in hs] for hs in hits]


def test_all_re_embedded_is_the_new_index_and_none_is_the_bridge_on_the_new_scale(reg, rebuild):
    old, new, adapter_id = rebuild
    full = open_progressive_bridge(reg, adapter_id, new.index_id)
    assert full.new_share == 1.0 and full.index_id == adapter_id
    alone = Searcher(reg).open(new.index_id).search(QUERIES, 5)
    assert _ids(full.search(QUERIES, 5)) == _ids(alone)

    none = open_progressive_bridge(reg, adapter_id, new.index_id, reembedded=set())
    bridge = open_bridge(reg, adapter_id).search(QUERIES, 5)
    got = none.search(QUERIES, 5)
    assert none.new_share == 0.0 and _ids(got) == _ids(bridge)
    scale, shift = none.scale, none.shift
    assert np.allclose([h.score for hs in got for h in hs], [scale * h.score + shift for hs in bridge for h in hs],
                       atol=1e-5)


def test_half_way_each_document_is_answered_from_exactly_one_space(reg, rebuild):
    old, new, adapter_id = rebuild
    done = {f"d{i}" for i in range(0, 120, 2)}  # every other document re-embedded
    half = open_progressive_bridge(reg, adapter_id, new.index_id, reembedded=done)
    assert half.new_share == 0.5
    new_scores = {(q, h.id): h.score for q, hs in zip(QUERIES, Searcher(reg).open(new.index_id).search(QUERIES, 120))
                  for h in hs}
    old_scores = {(q, h.id): half.scale * h.score + half.shift
                  for q, hs in zip(QUERIES, open_bridge(reg, adapter_id).search(QUERIES, 120)) for h in hs}
    for q, hits in zip(QUERIES, half.search(QUERIES, 10)):
        assert len(hits) == 10 == len({h.id for h in hits})
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for h in hits:  # each score is the one its own space gives
            expected = new_scores[(q, h.id)] if h.id in done else old_scores[(q, h.id)]
            assert h.score == pytest.approx(expected, abs=1e-5)
        best_new = max(s for (qq, d), s in new_scores.items() if qq == q and d in done)
        best_old = max(s for (qq, d), s in old_scores.items() if qq == q and d not in done)
        assert hits[0].score == pytest.approx(max(best_new, best_old), abs=1e-5)  # nothing better was missed


def test_a_progressive_bridge_needs_the_new_models_index_of_the_same_corpus(reg, rebuild):
    old, new, adapter_id = rebuild
    with pytest.raises(UsageError, match="the bridge needs tiny@2's index of 'ops'"):
        open_progressive_bridge(reg, adapter_id, old.index_id)


def test_embedops_search_with_progressive_says_what_share_the_new_index_answered(reg, rebuild):
    import json

    from helpers import StoreCli

    old, new, adapter_id = rebuild
    cli = StoreCli(str(reg.store.uri), create=False)
    found = json.loads(cli("search", "kafka lag", "--index", adapter_id, "--progressive", new.index_id, "--json").stdout)
    assert found["index_id"] == adapter_id and found["bridge"]["new_share"] == 1.0 and len(found["hits"]) == 10
    refused = cli("search", "kafka lag", "--index", old.index_id, "--progressive", new.index_id, expect=2)
    assert "--progressive needs --index ADAPTER_ID" in refused.stderr
