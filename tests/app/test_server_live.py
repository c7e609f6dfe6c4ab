"""`embedops serve` live features on loopback (a real uvicorn server in a thread): sticky canary
routing, live shadow traffic recorded in the store and shown by `shadow live`, and the rollback
policy aborting a canary or rolling production back by itself through the audited path."""

import json
import time

from conftest import queries, running_app
from helpers import StoreCli, authorise
from embedops.app.server import RollbackPolicy, ServeSettings, canary_bucket, create_app
from embedops.registry import Searcher


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def searched_until(client, texts: list[str], reg, action: str):
    """A predicate for :func:`wait_for`: send ``texts`` as searches, then say whether production's
    latest record is ``action`` (what the server's rollback policy does once it has seen enough)."""
    def check():
        for q in texts:
            client.post("/v1/search", json={"query": q, "k": 5})
        return reg.aliases.get("production").action == action
    return check


def quiet(**changes) -> RollbackPolicy:
    """A policy that never acts unless a test says so (agreement off, huge latency ratio)."""
    return RollbackPolicy(**({"max_p95_ratio": 0.0, "max_error_rate": 1.0} | changes))


def test_a_canary_answers_its_share_sticky_by_client(live_store):
    s = live_store
    authorise(s.reg, s.b)
    settings = ServeSettings(check_interval=0.1, rollback=quiet())
    with running_app(create_app(s.reg, settings)) as client:
        s.reg.start_canary(s.b.index_id, percent=30)
        wait_for(lambda: client.get("/readyz").json().get("canary"), 3, "the server seeing the canary")
        ready = client.get("/readyz").json()
        assert ready["canary"] == {"index_id": s.b.index_id, "model_ref": "tiny@1", "percent": 30.0}
        routes = {}
        for i in range(200):
            key = f"client-{i}"
            r = client.post("/v1/search", json={"query": "kafka lag", "k": 3}, headers={"X-Embedops-Client": key})
            body = r.json()
            routes[key] = (body["route"], body["index_id"])
            assert (body["route"] == "canary") == (canary_bucket("production", key) < 30)
        share = sum(1 for route, _ in routes.values() if route == "canary") / len(routes)
        assert 0.2 < share < 0.4
        assert {i for route, i in routes.values() if route == "canary"} == {s.b.index_id}
        assert {i for route, i in routes.values() if route == "stable"} == {s.a.index_id}
        for key, (route, _) in list(routes.items())[:20]:  # the same client stays on its side
            again = client.post("/v1/search", json={"query": "other words", "k": 3, "client": key}).json()
            assert again["route"] == route
        metrics = client.get("/metrics").text
        assert f'embedops_canary_percent{{alias="production",index="{s.b.index_id}"}} 30.0' in metrics
        # embeddings by alias stay on the stable index's model (vectors match the index searched)
        assert client.post("/v1/embeddings", json={"input": "x", "model": "production"}).json()["model"] == "tiny@1"

        s.reg.abort_canary(reason="test: done")
        wait_for(lambda: "canary" not in client.get("/readyz").json(), 3, "the server seeing the abort")
        for key in list(routes)[:30]:
            body = client.post("/v1/search", json={"query": "kafka lag", "k": 3, "client": key}).json()
            assert body["route"] == "stable" and body["index_id"] == s.a.index_id


def test_live_shadow_is_mirrored_off_the_request_path_and_recorded(live_store, tmp_path):
    s = live_store
    s.reg.promote(s.d.index_id, "shadow", override=True, reason="candidate in shadow")
    settings = ServeSettings(check_interval=0.1, shadow_alias="shadow", shadow_fraction=1.0, flush_interval=0.2,
                             rollback=quiet())
    qs = queries(12)
    with running_app(create_app(s.reg, settings)) as client:
        wait_for(lambda: client.get("/readyz").json().get("shadow"), 3, "the server following the shadow alias")
        for q in qs:
            body = client.post("/v1/search", json={"query": q, "k": 5}).json()
            assert body["index_id"] == s.a.index_id  # the user is answered by production only
        wait_for(lambda: len(s.reg.live.read(kind="shadow")) >= len(qs), 10, "the comparisons reaching the store")
        metrics = client.get("/metrics").text
        assert 'embedops_mirror_queries_total{kind="shadow",outcome="done"}' in metrics
        assert 'embedops_live_agreement{alias="production",kind="shadow"}' in metrics
    rows = s.reg.live.read(kind="shadow")
    assert {r.query for r in rows} == set(qs) and {(r.primary_index, r.other_index) for r in rows} == \
        {(s.a.index_id, s.d.index_id)}
    assert all(0 <= r.overlap <= 1 and r.k == 5 and len(r.primary_ids) == 5 and r.other_ms > 0 for r in rows)
    d_hits = {q: [h.id for h in hs] for q, hs in zip(qs, Searcher(s.reg, runtime=ServeSettings().runtime).open(s.d.index_id).search(qs, 5))}
    assert all(list(r.other_ids) == d_hits[r.query] for r in rows)  # the shadow side is d's real answer

    cli = StoreCli(s.uri)
    live = json.loads(cli("shadow", "live", "--since", "1h", "--json").stdout)
    (pair,) = live["pairs"]
    assert pair["kind"] == "shadow" and pair["queries"] == len(rows) and pair["primary_index"] == s.a.index_id
    assert abs(pair["overlap"] - sum(r.overlap for r in rows) / len(rows)) < 1e-6
    worst = live["disagreements"]
    assert worst and worst[0]["overlap"] == min(r.overlap for r in rows) and worst[0]["query"] in qs
    table = cli("shadow", "live", "--since", "1h").stdout
    assert "biggest disagreements" in table and s.d.index_id in table.replace("\n", "").replace("│", "").replace(" ", "")
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "no live comparisons" in cli("shadow", "live", "--since", "2100-01-01T00:00").stdout


def test_a_canary_that_disagrees_is_aborted_by_the_server_through_the_audited_path(live_store):
    s = live_store
    policy = quiet(min_agreement=0.6, min_requests=8, compare_fraction=1.0, window=30)
    settings = ServeSettings(check_interval=0.1, flush_interval=0.2, rollback=policy)
    with running_app(create_app(s.reg, settings)) as client:
        s.reg.start_canary(s.d.index_id, percent=50, override=True, reason="test: a model that disagrees")
        wait_for(lambda: client.get("/readyz").json().get("canary"), 3, "the canary being served")
        wait_for(searched_until(client, queries(60, seed=7)[:10], s.reg, "canary.abort"), 20, "the automatic abort")
        state = s.reg.aliases.get("production")
        assert state.automatic and state.actor.startswith("embedops serve (") and state.value == s.a.index_id
        assert state.reason.startswith("automatic: canary agreement") and "< min_agreement 0.60" in state.reason
        wait_for(lambda: "canary" not in client.get("/readyz").json(), 3, "the server following its own abort")
        assert 'embedops_automatic_actions_total{action="canary.abort",alias="production"} 1.0' in \
            client.get("/metrics").text
    history = StoreCli(s.uri)("history", "--json")
    event = [e for e in json.loads(history.stdout) if e["action"] == "alias.canary.abort"][-1]
    assert event["details"]["automatic"] and event["reason"] == state.reason
    status = StoreCli(s.uri)("canary", "status").stdout
    assert "no canary" in status and "automatic: canary agreement" in " ".join(status.split())


def test_a_promotion_that_fails_requests_is_rolled_back_by_the_server(live_store):
    s = live_store
    policy = quiet(max_error_rate=0.2, min_requests=5, watch=60, window=30)
    settings = ServeSettings(check_interval=0.1, rollback=policy)
    broken = s.reg.indexes.get(s.b.index_id)
    with running_app(create_app(s.reg, settings)) as client:
        assert client.post("/v1/search", json={"query": "x", "k": 2}).status_code == 200
        for f in (s.reg.store.root / f"{broken.table_name}.lance" / "data").iterdir():
            f.unlink()  # its files are gone: every search on it fails
        s.reg.promote(s.b.index_id, override=True, reason="test: promote a broken index")

        def rolled_back():
            r = client.post("/v1/search", json={"query": "kafka", "k": 2})
            assert r.status_code in (200, 500), r.text
            if r.status_code == 500:
                assert s.b.index_id in r.json()["error"]["message"]  # the error names the index that failed
            return s.reg.aliases.get("production").action == "rollback"

        wait_for(rolled_back, 20, "the automatic rollback")
        state = s.reg.aliases.get("production")
        assert state.value == s.a.index_id and state.automatic and "error rate" in state.reason
        wait_for(lambda: client.post("/v1/search", json={"query": "kafka", "k": 2}).status_code == 200, 3,
                 "serving from the rolled-back index again")
        assert f'embedops_index_errors_total{{alias="production",index="{s.b.index_id}"}}' in client.get("/metrics").text


def test_a_promotion_within_limits_is_left_alone(live_store):
    s = live_store
    policy = RollbackPolicy(min_agreement=0.6, min_requests=5, compare_fraction=1.0, max_p95_ratio=50)
    app = create_app(s.reg, ServeSettings(check_interval=0.1, rollback=policy))
    with running_app(app) as client:
        authorise(s.reg, s.b)
        s.reg.promote(s.b.index_id)  # same model as a: agreement 1.0
        wait_for(lambda: client.get("/readyz").json()["index_id"] == s.b.index_id, 3, "following the promotion")
        for q in queries(30):
            assert client.post("/v1/search", json={"query": q, "k": 5}).json()["index_id"] == s.b.index_id
        wait_for(lambda: len(app.state.signals.comparisons("previous", "production", s.b.index_id, s.a.index_id,
                                                           since=0)) >= 5, 10, "mirrored comparisons")
        # the judge, driven here with the monotonic clock the signals are stamped with, saw them all
        [seen] = [j for j in app.state.background.judge(time.monotonic()) if j.alias == "production"]
        assert seen.kind == "previous" and seen.index_id == s.b.index_id and seen.requests >= 30
        assert seen.comparisons >= 5 and seen.verdict is None and not seen.acted
    assert s.reg.aliases.get("production").action == "promote"


def test_a_disabled_policy_never_acts(live_store):
    s = live_store
    policy = quiet(enabled=False, min_agreement=0.9, min_requests=3, compare_fraction=1.0)
    app = create_app(s.reg, ServeSettings(check_interval=0.1, rollback=policy))
    with running_app(app) as client:
        s.reg.start_canary(s.d.index_id, percent=50, override=True, reason="test")
        wait_for(lambda: client.get("/readyz").json().get("canary"), 3, "the canary being served")
        for q in queries(40):
            client.post("/v1/search", json={"query": q, "k": 5})
        wait_for(lambda: len(app.state.signals.comparisons("canary", "production", s.d.index_id, s.a.index_id,
                                                           since=0)) >= 3, 10, "mirrored canary comparisons")
        [seen] = [j for j in app.state.background.judge(time.monotonic()) if j.alias == "production"]
        assert seen.kind == "canary" and seen.verdict is not None and seen.verdict.signal == "agreement"
        assert not seen.acted  # it would have aborted; the policy says watch only
    assert s.reg.aliases.get("production").canary is not None


def test_bad_fields_are_422_naming_the_field(live_store):
    with running_app(create_app(live_store.reg, ServeSettings(rollback=quiet()))) as client:
        for body, field in [({"query": "x", "alias": "../etc"}, "alias"), ({"queries": []}, "queries"),
                            ({"query": "x", "k": 5000}, "k"), ({"query": "x", "client": "c" * 300}, "client")]:
            r = client.post("/v1/search", json=body)
            assert r.status_code == 422 and r.json()["error"]["param"] == field, (body, r.text)
        r = client.post("/v1/embeddings", json={"input": "x", "model": "tiny@zero"})
        assert r.status_code in (404, 422) and "tiny@zero" in r.text


def test_a_promotion_older_than_the_watch_is_not_judged_by_a_server_started_later(live_store):
    import datetime

    s = live_store
    s.reg.promote(s.d.index_id, override=True, reason="test: long ago, as far as watch=1 s goes")
    later = lambda: datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)  # noqa: E731
    policy = quiet(min_agreement=0.6, min_requests=3, compare_fraction=1.0, watch=1)
    app = create_app(s.reg, ServeSettings(check_interval=0.1, flush_interval=0.1, rollback=policy), utc_now=later)
    with running_app(app) as client:
        for q in queries(20):
            assert client.post("/v1/search", json={"query": q, "k": 5}).json()["index_id"] == s.d.index_id
        assert app.state.mirror.submitted["previous"] == 0  # decided on the request path: nothing mirrored
        background = app.state.background
        assert [j for j in background.judge(time.monotonic()) if j.alias == "production"] == []  # past the watch
        promoted = datetime.datetime.fromisoformat(s.reg.aliases.get("production").ts)
        background.utc_now = lambda: promoted  # the promotion is fresh again, however slow the machine
        [seen] = [j for j in background.judge(time.monotonic()) if j.alias == "production"]
        assert seen.kind == "previous" and seen.comparisons == 0 and seen.verdict is None
    assert s.reg.aliases.get("production").action == "promote"


def test_a_published_alias_record_wakes_the_server_before_its_next_check(live_store):
    s = live_store
    authorise(s.reg, s.b)
    with running_app(create_app(s.reg, ServeSettings(check_interval=30, rollback=quiet()))) as client:
        ready = wait_for(lambda: client.get("/readyz").json()["follows"]["file_events"] and client.get("/readyz").json(),
                         5, "the server watching the alias logs")
        assert ready["follows"]["check_interval"] == 30 and ready["index_id"] == s.a.index_id
        s.reg.promote(s.b.index_id)
        wait_for(lambda: client.get("/readyz").json()["index_id"] == s.b.index_id, 2,
                 "the switch, 28 s before the next periodic check")
        s.reg.rollback(reason="test")
        wait_for(lambda: client.get("/readyz").json()["index_id"] == s.a.index_id, 2, "the rollback")


def test_a_server_compacts_the_registry_tables_that_one_row_writes_fragment(live_store):
    s = live_store
    for n in range(40):  # each audit event is one more small fragment of the events table
        s.reg.audit.record("test.note", f"n{n}")
    fragments = lambda: s.reg.store.open_table("events").stats()["fragment_stats"]["num_fragments"]  # noqa: E731
    assert fragments() > 40
    with running_app(create_app(s.reg, ServeSettings(compact_interval=0.5))) as client:
        deadline = time.monotonic() + 20
        while fragments() > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert fragments() == 1
        assert client.get("/readyz").json()["ready"]
    assert sorted(e.subject for e in s.reg.audit.events() if e.action == "test.note") == sorted(f"n{n}" for n in range(40))


def test_a_bridge_promotion_that_disagrees_is_rolled_back_by_the_server(live_store):
    """The rollback policy judges a bridge (issue #35) as it judges an index: tiny@2's queries
    mapped into a's space agree about a third with a at k=5, so its promotion is rolled back."""
    from embedops.app.bridges import fit_bridge_adapter

    s = live_store
    bridge = fit_bridge_adapter(s.reg, "tiny@2", s.a.index_id, sample=60, holdout=0.15).adapter_id
    policy = quiet(min_agreement=0.6, min_requests=8, compare_fraction=1.0, window=30, watch=60)
    settings = ServeSettings(check_interval=0.1, flush_interval=0.2, rollback=policy)
    with running_app(create_app(s.reg, settings)) as client:
        client.post("/v1/search", json={"query": "warm up", "k": 5})
        s.reg.promote(bridge, override=True, reason="test: a bridge that disagrees")
        wait_for(lambda: client.get("/readyz").json()["index_id"] == bridge, 3, "the bridge being served")
        wait_for(searched_until(client, queries(60, seed=11)[:10], s.reg, "rollback"), 20,
                 "the automatic rollback of the bridge")
        state = s.reg.aliases.get("production")
        assert state.automatic and state.value == s.a.index_id and state.previous == bridge
        assert "production agreement" in state.reason
        wait_for(lambda: client.get("/readyz").json()["index_id"] == s.a.index_id, 3, "the server following it")
