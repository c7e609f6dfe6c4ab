"""`embedops canary ...` and the alias views (alias show, status, history) in-process: refused without
a report as promote is, every step printed in 80 columns, automatic switches flagged."""

import json

from helpers import StoreCli, authorise


def test_canary_commands_follow_the_promotion_rule_and_show_the_split(live_store):
    s = live_store
    cli = StoreCli(s.uri)
    refused = cli("canary", "start", s.b.index_id, "--percent", "10", expect=1)
    assert "no guard report" in refused.stderr and s.reg.aliases.get("production").canary is None
    assert "--force needs --reason" in cli("canary", "start", s.b.index_id, "--force", expect=2).stderr
    bad = cli("canary", "start", s.b.index_id, "--percent", "100", "--force", "--reason", "x", expect=2)
    assert "less than 100 percent" in bad.stderr

    report = authorise(s.reg, s.b)
    started = cli("canary", "start", s.b.index_id, "--percent", "10").stdout
    assert s.b.index_id in started and "10% of searches" in started and report.report_id in started
    status = cli("canary", "status").stdout
    assert s.b.index_id in status and "90%" in status and "no mirrored canary queries recorded yet" in status
    shown = cli("alias", "show", "production").stdout
    assert f"canary {s.b.index_id} answers 10% of searches" in shown
    board = cli("status").stdout
    assert "+ canary" in board and "10%" in board
    data = json.loads(cli("canary", "status", "--json").stdout)
    assert data["alias"]["canary"] == {"index_id": s.b.index_id, "percent": 10.0, "report_id": report.report_id,
                                       "override": False}
    for out in (started, status, shown, board):
        assert max(map(len, out.splitlines())) <= 80

    promoted = cli("canary", "promote").stdout
    assert f"production -> {s.b.index_id}" in promoted and report.report_id in promoted
    assert "no canary to promote" in cli("canary", "promote", expect=2).stderr
    authorise(s.reg, s.d)
    cli("canary", "start", s.d.index_id, "-p", "5")
    assert "canary aborted" in cli("canary", "abort", "--reason", "looks off").stdout
    assert "no canary to abort" in cli("canary", "abort", expect=2).stderr
    history = cli("alias", "history", "production").stdout
    assert "canary.start" in history and "canary.abort" in history and "looks off" in history


def test_automatic_switches_are_flagged_in_history_and_status(live_store):
    s = live_store
    cli = StoreCli(s.uri)
    s.reg.promote(s.d.index_id, override=True, reason="test")
    s.reg.rollback(reason="automatic: production agreement 0.20 < min_agreement 0.60", by="embedops serve (h:1)",
                   automatic=True)
    history = cli("history").stdout
    assert "(AUTOMATIC)" in history and max(map(len, history.splitlines())) <= 80
    event = json.loads(cli("history", "--json").stdout)[-1]
    assert event["action"] == "alias.rollback" and event["actor"] == "embedops serve (h:1)" and event["details"]["automatic"]
    status = cli("status").stdout
    assert "automatic" in status and max(map(len, status.splitlines())) <= 80
    state = json.loads(cli("alias", "show", "production", "--json").stdout)
    assert state["automatic"] and state["actor"] == "embedops serve (h:1)"
