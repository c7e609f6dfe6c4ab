import pytest

from embedops.errors import AliasConflictError, UsageError
from helpers import race_alias_switches
from embedops.registry import Registry
from embedops.registry.aliases import AliasRegistry
from embedops.store import Store


@pytest.fixture
def aliases(tmp_path):
    return AliasRegistry(Store.open(str(tmp_path / "s")))


def test_switch_records_previous_and_rollback_restores_it(aliases):
    aliases._switch("production", "idx-a", expect=None, reason="first")
    aliases._switch("production", "idx-b", expect="idx-a", reason="better recall")
    assert aliases.current("production") == "idx-b"
    state = aliases._rollback("production", reason="bad latency")
    assert state.value == "idx-a" and state.previous == "idx-b" and state.action == "rollback"
    hist = aliases.history("production")
    assert [(h.seq, h.value, h.previous) for h in hist] == [(1, "idx-a", None), (2, "idx-b", "idx-a"), (3, "idx-a", "idx-b")]
    assert hist[1].reason == "better recall"


def test_wrong_expectation_is_a_conflict_and_changes_nothing(aliases):
    aliases._switch("production", "idx-a")
    with pytest.raises(AliasConflictError, match="not the expected 'idx-x'"):
        aliases._switch("production", "idx-b", expect="idx-x")
    assert aliases.current("production") == "idx-a"
    assert len(aliases.history("production")) == 1


def test_rollback_without_previous_and_noop_switch_are_refused(aliases):
    with pytest.raises(UsageError):
        aliases._rollback("production")
    aliases._switch("production", "idx-a")
    with pytest.raises(UsageError, match="no previous"):
        aliases._rollback("production")
    with pytest.raises(UsageError, match="already points"):
        aliases._switch("production", "idx-a")


def test_processes_racing_on_one_alias_have_exactly_one_winner(tmp_path):
    uri = str(tmp_path / "s")
    AliasRegistry(Store.open(uri))._switch("production", "idx-start")
    outcomes = race_alias_switches(uri, 6)
    winners = [i for i, o in outcomes.items() if o == "won"]
    assert len(winners) == 1, outcomes
    reg = Registry(Store.open(uri))
    hist = reg.aliases.history("production")
    assert [h.seq for h in hist] == [1, 2]
    assert hist[-1].value == f"idx-{winners[0]}" and hist[-1].previous == "idx-start"
    switches = [e for e in reg.history() if e.action == "alias.set"]
    assert len(switches) == 2
