"""Bridges behind aliases: an adapter id is a serving target like an index id, under the same
promotion rule, searched through the adapter, protected and rolled back like an index (issue #35)."""

import numpy as np
import pytest

from embedops.app.bridges import fit_bridge_adapter, open_bridge
from embedops.errors import IndexStateError, PromotionRefused
from embedops.index import IndexStatus
from embedops.registry import Searcher
from helpers import authorise, binding_for, bridged_notes, put_report

@pytest.fixture
def bridge(reg, tmp_path, tiny_model_b):
    """tiny@1's index of 90 notes, and an adapter bridging tiny@2's queries to it."""
    old = bridged_notes(reg, tmp_path, tiny_model_b)
    return old, fit_bridge_adapter(reg, "tiny@2", old.index_id, kind="affine", sample=80)


def test_an_adapter_id_names_a_view_of_its_old_index_with_the_new_models_queries(reg, bridge):
    old, adapter = bridge
    view = reg.target(adapter.adapter_id)
    assert (view.index_id, view.model_ref, view.corpus) == (adapter.adapter_id, "tiny@2", "ops")
    assert (view.table_name, view.table_version, view.status) == (old.table_name, old.table_version, old.status)
    assert view.bridge.to_dict() == {"adapter_id": adapter.adapter_id, "index_id": old.index_id,
                                     "index_model_ref": "tiny@1", "kind": "affine"}
    assert view.precision == "fp32" and reg.target(old.index_id) == old


def test_a_bridge_is_promoted_only_on_its_own_report_then_answers_and_rolls_back(reg, bridge):
    old, adapter = bridge
    reg.promote(old.index_id, override=True, reason="first index")
    view = reg.target(adapter.adapter_id)
    with pytest.raises(PromotionRefused, match=f"cannot promote {adapter.adapter_id} to production: it has no guard"):
        reg.promote(adapter.adapter_id)
    authorise(reg, old)  # a report on the old index says nothing about the bridge
    with pytest.raises(PromotionRefused, match="no guard report"):
        reg.promote(adapter.adapter_id)
    put_report(reg, binding_for(reg, view, model_digest="0" * 64))  # judged another model's weights
    with pytest.raises(PromotionRefused, match="judged model digest 000000000000"):
        reg.promote(adapter.adapter_id)
    authorise(reg, view)
    state = reg.promote(adapter.adapter_id)
    assert (state.value, state.previous) == (adapter.adapter_id, old.index_id)

    searcher = Searcher(reg)
    got = searcher.search("kafka consumer lag", k=5)
    assert (got.index_id, got.model_ref) == (adapter.adapter_id, "tiny@2")
    expected = open_bridge(reg, adapter.adapter_id).search(["kafka consumer lag"], 5)[0]
    assert [h.id for h in got.hits] == [h.id for h in expected]
    assert searcher.open(adapter.adapter_id).encoder.provider.endswith("affine adapter")
    plain = searcher.search("kafka consumer lag", k=5, index_id=old.index_id)  # the old model's own queries
    assert not np.allclose([h.score for h in plain.hits], [h.score for h in got.hits])

    assert reg.rollback(reason="bridge drifts").value == old.index_id
    assert searcher.search("kafka consumer lag", k=5).index_id == old.index_id
    assert reg.promote(adapter.adapter_id).value == adapter.adapter_id  # its report binds production as it is again


def test_the_index_a_bridge_searches_cannot_be_retired_while_an_alias_names_the_bridge(reg, bridge):
    old, adapter = bridge
    reg.promote(adapter.adapter_id, "shadow", override=True, reason="try the bridge on mirrored traffic")
    with pytest.raises(IndexStateError, match=f"bridge {adapter.adapter_id} searches it .alias 'shadow' points at it"):
        reg.retire(old.index_id, reason="re-embedded")
    assert reg.protected_indexes()[adapter.adapter_id] == "alias 'shadow' points at it"


def test_a_bridge_over_a_retired_index_is_neither_served_nor_promoted(reg, bridge):
    old, adapter = bridge
    reg.indexes.update(old.index_id, status=IndexStatus.RETIRED, reason="re-embedded")
    with pytest.raises(IndexStateError, match=f"bridge {adapter.adapter_id}'s index {old.index_id} is retired"):
        Searcher(reg).search("kafka consumer lag", index_id=adapter.adapter_id)
    with pytest.raises(IndexStateError, match="is retired; only ready indexes can be promoted"):
        reg.promote(adapter.adapter_id, override=True, reason="try")
