"""Canaries in the alias record: started only under the promotion rule, promoted as an ordinary
guarded promotion, aborted (like a rollback) always; every step a compare-and-swap on the alias log."""

import pytest

from helpers import SAMPLE_DOCS, authorise, write_jsonl
from embedops.errors import AliasConflictError, IndexStateError, PromotionRefused, UsageError
from embedops.reembed import IndexBuild
from embedops.registry import Registry
from embedops.store import Store


@pytest.fixture
def three(tmp_path, tiny_model_dir):
    """Production on index a; b and c ready beside it."""
    reg = Registry(Store.open(str(tmp_path / "store")))
    reg.models.register("tiny", tiny_model_dir)
    reg.corpora.add("ops", write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS))
    a, b, c = (IndexBuild(reg, "tiny@1", "ops").run().index for _ in range(3))
    reg.promote(a.index_id, override=True, reason="first index")
    return reg, a, b, c


def test_a_canary_needs_the_report_a_promotion_needs_and_keeps_the_alias_value(three):
    reg, a, b, c = three
    with pytest.raises(PromotionRefused, match="cannot start a canary of .* it has no guard report"):
        reg.start_canary(b.index_id, percent=10)
    with pytest.raises(UsageError, match="needs a reason"):
        reg.start_canary(b.index_id, percent=10, override=True)
    assert reg.aliases.get("production").canary is None  # nothing written by the refusals
    report = authorise(reg, b)
    state = reg.start_canary(b.index_id, percent=10)
    assert state.value == a.index_id and state.action == "canary.start"
    assert state.canary.index_id == b.index_id and state.canary.percent == 10 and state.canary.report_id == report.report_id
    assert reg.aliases.current("production") == a.index_id  # the stable index still answers the rest
    ramped = reg.start_canary(b.index_id, percent=25)  # the same report still authorises it: the alias has not moved
    assert ramped.action == "canary.ramp" and ramped.canary.percent == 25
    with pytest.raises(IndexStateError, match="cannot be retired"):
        reg.retire(b.index_id)  # a canary is protected like an alias target
    for bad in (0, 100, 150, -1, True):
        with pytest.raises(UsageError, match="percent"):
            reg.start_canary(b.index_id, percent=bad)


def test_one_canary_at_a_time_and_no_promotion_of_another_index_under_it(three):
    reg, a, b, c = three
    authorise(reg, b)
    authorise(reg, c)
    reg.start_canary(b.index_id, percent=10)
    with pytest.raises(UsageError, match="already has a canary"):
        reg.start_canary(c.index_id, percent=10)
    with pytest.raises(UsageError, match="promote it .* or abort it"):
        reg.promote(c.index_id)
    assert reg.aliases.get("production").canary.index_id == b.index_id


def test_canary_promote_is_a_guarded_promotion_and_clears_the_split(three):
    reg, a, b, c = three
    report = authorise(reg, b)
    reg.start_canary(b.index_id, percent=10)
    state = reg.promote_canary()
    assert state.value == b.index_id and state.previous == a.index_id and state.canary is None
    assert state.action == "promote" and state.report_id == report.report_id
    assert reg.rollback(reason="back").value == a.index_id  # the rollback target is the old stable index


def test_an_override_canary_is_audited_and_its_promotion_needs_a_report_or_override(three):
    reg, a, b, c = three
    state = reg.start_canary(b.index_id, percent=5, override=True, reason="try it on 5%")
    assert state.canary.override and state.canary.report_id is None
    assert any(e.action == "canary.override" and e.reason == "try it on 5%" for e in reg.history())
    with pytest.raises(PromotionRefused):
        reg.promote_canary()
    assert reg.promote_canary(override=True, reason="looked fine").value == b.index_id


def test_abort_and_rollback_are_always_allowed_and_end_the_canary(three):
    reg, a, b, c = three
    authorise(reg, c)
    reg.promote(c.index_id)  # production c, previous a
    authorise(reg, b)
    reg.start_canary(b.index_id, percent=20)
    with pytest.raises(AliasConflictError, match="not the expected"):
        reg.abort_canary(expect_canary=c.index_id)  # an automatic abort names the canary it judged
    aborted = reg.abort_canary(reason="p95 doubled", by="embedops serve (host:1)", automatic=True)
    assert aborted.canary is None and aborted.value == c.index_id and aborted.previous == a.index_id
    assert aborted.automatic and aborted.actor == "embedops serve (host:1)" and aborted.reason == "p95 doubled"
    with pytest.raises(UsageError, match="no canary"):
        reg.abort_canary()
    reg.start_canary(b.index_id, percent=20)
    rolled = reg.rollback(reason="production itself is bad")
    assert rolled.value == a.index_id and rolled.canary is None  # rollback target carried through the canary records
    actions = [h.action for h in reg.aliases.history("production")]
    assert actions == ["promote", "promote", "canary.start", "canary.abort", "canary.start", "rollback"]
    switched = [e for e in reg.history() if e.action == "alias.canary.abort"]
    assert switched and switched[0].details["automatic"] and switched[0].actor == "embedops serve (host:1)"


def test_a_canary_start_racing_a_promotion_is_a_conflict(three, monkeypatch):
    reg, a, b, c = three
    authorise(reg, b)
    real = reg.aliases._set_canary

    def promote_in_between(*args, **kwargs):
        reg.promote(c.index_id, override=True, reason="someone else, meanwhile")
        return real(*args, **kwargs)

    monkeypatch.setattr(reg.aliases, "_set_canary", promote_in_between)
    with pytest.raises(AliasConflictError):
        reg.start_canary(b.index_id, percent=10)
    state = reg.aliases.get("production")
    assert state.value == c.index_id and state.canary is None


def test_an_override_stays_flagged_while_canaries_come_and_go_beside_it(three):
    reg, a, b, c = three  # production a was promoted by override in the fixture
    assert [(x.name, x.action, x.reason) for x in reg.overridden_aliases()] == [("production", "promote", "first index")]
    reg.start_canary(b.index_id, percent=10, override=True, reason="try b")
    flagged = reg.overridden_aliases()
    assert [(x.action, x.reason) for x in flagged] == [("promote", "first index"), ("canary.start", "try b")]
    reg.abort_canary(reason="done")
    assert [x.reason for x in reg.overridden_aliases()] == ["first index"]  # the value has not moved
    reg.promote(c.index_id, override=True, reason="c now")
    authorise(reg, b)
    reg.promote(b.index_id)
    assert reg.overridden_aliases() == []
