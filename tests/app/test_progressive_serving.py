"""A bridge behind an alias while its new model's index is being built (issue #35): it answers from
both spaces once the rebuild reaches the share its guard report measured to hold up, from the plain
bridge before, and follows the build's commits; status shows how far the rebuild is."""

import numpy as np
import pytest

from conftest import running_app
from embedops.app.bridges import fit_bridge_adapter
from embedops.app.server import create_app
from embedops.app.server.follower import AliasFollower
from embedops.app.status import store_status
from embedops.index import IndexStatus, ProgressiveReader
from embedops.reembed import IndexBuild
from embedops.registry import Searcher
from helpers import PASSING_GATES, StoreCli, binding_for, bridged_notes, put_report


class _Stop(Exception):
    pass


def _partial_build(reg, ref: str, corpus: str, stop_at: int):
    """``ref``'s index of ``corpus`` left building after ``stop_at`` documents (as a killed build is)."""
    def crash(embedded):
        if embedded >= stop_at:
            raise _Stop()

    with pytest.raises(_Stop):
        IndexBuild(reg, ref, corpus, chunk_size=8, after_chunk=crash).run()
    [partial] = [i for i in reg.indexes.list() if i.model_ref == ref]
    assert partial.status is IndexStatus.BUILDING
    return partial


def _promote_with(reg, bridge: str, progressive_from: float | None):
    """Promote ``bridge`` on a passing report whose bridge lift gate measured the merge to hold up
    from ``progressive_from`` of the rebuild."""
    lift = {"name": "bridge_lift", "status": "pass", "reason": "keeps 60% of the lift",
            "evidence": {"progressive": {"progressive_from": progressive_from}}}
    report = put_report(reg, binding_for(reg, reg.target(bridge)), gates=[*PASSING_GATES, lift])
    state = reg.promote(bridge)
    assert state.report_id == report.report_id
    return state


@pytest.fixture
def bridged(reg, tmp_path, tiny_model_b):
    old = bridged_notes(reg, tmp_path, tiny_model_b)  # 90 notes indexed by tiny@1, tiny@2 registered
    reg.promote(old.index_id, override=True, reason="first index")
    bridge = fit_bridge_adapter(reg, "tiny@2", old.index_id, kind="procrustes", sample=90).adapter_id
    return reg, old, bridge


def test_a_served_bridge_goes_progressive_at_the_measured_share_and_follows_the_build(bridged, tmp_path):
    reg, old, bridge = bridged
    partial = _partial_build(reg, "tiny@2", "ops", stop_at=40)
    _promote_with(reg, bridge, progressive_from=0.5)
    follower = AliasFollower(Searcher(reg), progress_interval=0.0)
    view = follower.view("production")  # 40 of 90 re-embedded: under the 50% the report measured
    assert type(view.stable.encoder).__name__ == "BridgedEncoder" and not isinstance(view.stable, ProgressiveReader)
    plan = store_status(reg).rebuilds["production"]
    assert (plan.new_index.index_id, plan.done, plan.total, plan.active) == (partial.index_id, 40, 90, False)
    assert "plain bridge until 50%" in StoreCli(str(reg.store.root))("status").stdout
    follower.refresh(force=True)  # nothing moved: the same reader keeps answering
    assert follower.view("production").stable is view.stable

    IndexBuild(reg, "tiny@2", "ops", chunk_size=8).run()  # the build resumes and finishes
    follower.refresh(force=True)
    view = follower.view("production")
    assert isinstance(view.stable, ProgressiveReader) and view.stable.new_share == 1.0
    assert view.stable.index_id == bridge and view.stable.bridge_info["new_index"] == partial.index_id
    # every document now answers from the new model's own index: the same hits as searching it
    full = Searcher(reg).open(partial.index_id).search(["kafka consumer lag"], 5)[0]
    assert [h.id for h in view.stable.search(["kafka consumer lag"], 5)[0]] == [h.id for h in full]
    assert "progressive" in StoreCli(str(reg.store.root))("status").stdout


def test_a_bridge_promoted_without_a_measured_share_stays_a_plain_bridge(bridged):
    reg, old, bridge = bridged
    _partial_build(reg, "tiny@2", "ops", stop_at=72)
    reg.promote(bridge, override=True, reason="no report: nothing measured the merge")
    follower = AliasFollower(Searcher(reg), progress_interval=0.0)
    assert not isinstance(follower.view("production").stable, ProgressiveReader)
    assert store_status(reg).rebuilds["production"].active is False
    reg.rollback(reason="promote it again, on a report")
    _promote_with(reg, bridge, progressive_from=None)  # a report whose gate found no share that holds up
    follower.refresh(force=True)
    assert not isinstance(follower.view("production").stable, ProgressiveReader)


def test_http_answers_say_which_share_came_from_the_new_index(bridged):
    reg, old, bridge = bridged
    partial = _partial_build(reg, "tiny@2", "ops", stop_at=24)
    _promote_with(reg, bridge, progressive_from=0.25)
    with running_app(create_app(reg, check_interval=0.2)) as client:
        body = client.post("/v1/search", json={"queries": ["kafka lag", "tls renewal"], "k": 5}).json()
        ready = client.get("/readyz").json()
        embedded = client.post("/v1/embeddings", json={"input": ["kafka lag"], "model": "production"}).json()
    assert body["index_id"] == bridge and all(len(r["hits"]) == 5 for r in body["results"])
    assert body["bridge"]["new_index"] == partial.index_id and body["bridge"]["new_share"] == pytest.approx(24 / 90)
    assert ready["bridge"]["new_share"] == pytest.approx(24 / 90)
    own = Searcher(reg).encoder_for(reg.indexes.get(partial.index_id)).encode(["kafka lag"])[0]
    assert np.allclose(embedded["data"][0]["embedding"], own, atol=1e-5)  # the space the rebuild moves to
