"""The guards judge a bridge (a new model's queries through an adapter over the old index) as they
judge an index: one that loses against production is refused, one that holds promotes (issue #35)."""

import shutil

import pytest

from embedops.app.bridges import fit_bridge_adapter
from embedops.guards import PromotionRefused, run_guards
from embedops.reembed import IndexBuild
from embedops.registry import Searcher
from guard_helpers import RUNBOOKS, damaged_copy, runbooks_in_minilm_production, small_gold
from helpers import bundled_model_path

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def bridged(tmp_path_factory):
    """The 20 runbooks among 430 filler notes, indexed by minilm@1 in production; minilm@2 (the same
    weights) and minilm@3 (damaged), each with a Procrustes adapter over that index."""
    root = tmp_path_factory.mktemp("bridges")
    reg, base = runbooks_in_minilm_production(root)
    twin = shutil.copytree(bundled_model_path(), root / "twin")
    (twin / "NOTES.md").write_text("the same weights, registered again: a version whose adapter is near identity\n")
    reg.models.register("minilm", twin, parent="minilm@1")
    reg.models.register("minilm", damaged_copy(root / "damaged"), parent="minilm@1")
    adapters = {ref: fit_bridge_adapter(reg, ref, base.index_id, sample=450).adapter_id
                for ref in ("minilm@2", "minilm@3")}
    return reg, base, adapters


def test_a_bridge_that_loses_against_production_is_refused_with_the_reason(bridged, sts_file):
    reg, base, adapters = bridged
    report = run_guards(reg, adapters["minilm@3"], gold=RUNBOOKS, general=[sts_file], policy=small_gold())
    gates = {g.name: g for g in report.gates}
    assert report.verdict == "fail" and gates["domain"].status == "fail" and gates["domain"].value < -1.0
    assert report.stored.binding.index_id == adapters["minilm@3"]
    assert report.stored.inputs["bridge"]["index_id"] == base.index_id
    with pytest.raises(PromotionRefused, match="failed: domain"):
        reg.promote(adapters["minilm@3"], policy=small_gold())


def test_a_bridge_that_holds_promotes_answers_and_rolls_back(bridged, sts_file):
    reg, base, adapters = bridged
    bridge = adapters["minilm@2"]
    # minilm@2 has production's weights: a fine-tune with nothing gained, refused under the default
    default = run_guards(reg, bridge, gold=RUNBOOKS, general=[sts_file], policy=small_gold())
    domain = next(g for g in default.gates if g.name == "domain")
    assert default.verdict == "fail" and domain.reason.startswith("no measured lift: minilm@2 is a fine-tune")
    holds = small_gold(fine_tunes_must_lift=False)  # no worse is enough under this policy
    report = run_guards(reg, bridge, gold=RUNBOOKS, general=[sts_file], policy=holds)
    assert report.verdict == "pass", [(g.name, g.status, g.reason) for g in report.gates]
    gates = {g.name: g for g in report.gates}
    assert gates["domain"].evidence["judgeable_queries"] == 10 and gates["index_integrity"].status == "pass"
    assert reg.promote(bridge, policy=holds).value == bridge
    found = Searcher(reg).search("the primary database is unreachable", k=3)
    assert (found.index_id, found.model_ref) == (bridge, "minilm@2") and found.hits[0].id.startswith("rb-")
    assert reg.rollback(reason="wait for the full index").value == base.index_id
    assert reg.promote(bridge, policy=holds).value == bridge  # the report binds production as it is again


def test_the_report_of_a_bridge_states_the_share_of_the_full_re_embeds_lift_it_keeps(bridged, sts_file):
    reg, base, adapters = bridged
    bridge = adapters["minilm@2"]  # the same weights as production's model: a near-identity adapter
    reg.promote(base.index_id, "base", override=True, reason="the index the bridge searches, on its own alias")
    same = run_guards(reg, bridge, gold=RUNBOOKS, general=[sts_file], policy=small_gold(), alias="base")
    lift = next(g for g in same.gates if g.name == "bridge_lift")
    assert lift.status == "skip" and "no lift to share" in lift.reason and "a sample of 450 documents" in lift.reason
    # against a worse index (the damaged model's) there is a lift, and a twin bridge keeps all of it
    worse = IndexBuild(reg, "minilm@3", "runbooks").run().index
    reg.promote(worse.index_id, "staging", override=True, reason="a weaker index to measure a lift from")
    sampled = run_guards(reg, bridge, gold=RUNBOOKS, general=[sts_file], policy=small_gold(), alias="staging")
    lift = next(g for g in sampled.gates if g.name == "bridge_lift")
    means = lift.evidence["means"]
    assert lift.status == "pass" and means["full"] - means["production"] > 5.0 and 0.9 <= lift.value <= 1.1
    assert lift.evidence["full_index"] is None and "keeps" in lift.reason
    progressive = lift.evidence["progressive"]  # merges of the twin's two spaces: about the bridge itself
    assert set(progressive["means"]) == {"0.25", "0.5", "0.75"} and progressive["bridge"] == means["bridge"]
    assert all(abs(m - means["bridge"]) < 1.0 for m in progressive["means"].values())
    start = progressive["progressive_from"]
    assert start is None or all(m >= means["bridge"] for s, m in progressive["means"].items() if float(s) >= start)
    full = IndexBuild(reg, "minilm@2", "runbooks").run().index  # the full re-embed, when it exists, is read
    whole = run_guards(reg, bridge, gold=RUNBOOKS, general=[sts_file], policy=small_gold(), alias="staging")
    lift = next(g for g in whole.gates if g.name == "bridge_lift")
    assert lift.evidence["full_index"] == full.index_id and 0.9 <= lift.value <= 1.1
    assert lift.evidence["means"]["production"] == pytest.approx(whole.evidence["production"]["ndcg@10"])
