"""`embedops serve` as real processes on loopback: two servers on one store under 32 concurrent
clients while a promotion, a rollback, canary starts and aborts and automatic aborts and rollbacks
happen and a bridge (issue #35) is promoted, rolled back, promoted again and replaced by its full
index; a server killed with SIGKILL; a store that stops taking writes mid-run."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import queries, start_serve
from helpers import authorise
from embedops.app.server import ServeSettings
from embedops.registry import Registry, Searcher

pytestmark = pytest.mark.slow

K = 5
POLICY = """[serve.rollback]
min_agreement = 0.6     # a (tiny@1) and d (tiny@2) overlap about 0.26 at k=5; a and b 1.0
max_p95_ratio = 0       # latency on a loaded 2-core machine is too noisy to act on in a test
max_error_rate = 0.05
min_requests = 10
compare_fraction = 1.0
window = 20
watch = 120
"""


class Load:
    """``clients`` concurrent asyncio clients sending two-query searches round-robin to ``urls`` until
    stopped; every response is checked against what its named index answers in-process."""

    def __init__(self, urls: list[str], expected: dict[tuple[str, int], list[list[str]]], pairs: list[list[str]],
                 clients: int = 32):
        self.urls, self.expected, self.pairs, self.clients = urls, expected, pairs, clients
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.mixed: list[str] = []
        self.answered_by: set[str] = set()
        self.routes: set[str] = set()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _client(self, n: int, http: httpx.AsyncClient) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            url = self.urls[(n + i) % len(self.urls)]
            p = (n * 7 + i) % len(self.pairs)
            try:
                r = await http.post(url + "/v1/search", json={"queries": self.pairs[p], "k": K},
                                    headers={"X-Embedops-Client": f"client-{n}"})
            except httpx.HTTPError as exc:
                self.failures.append(f"{url}: {exc!r}")
                continue
            if r.status_code != 200:
                self.failures.append(f"{url}: {r.status_code} {r.text[:200]}")
                continue
            body = r.json()
            got = [[h["id"] for h in res["hits"]] for res in body["results"]]
            if got != self.expected.get((body["index_id"], p)):
                self.mixed.append(f"{body['index_id']} pair {p}: {got}")
            self.ok += 1
            self.answered_by.add(body["index_id"])
            self.routes.add(body["route"])

    async def _main(self) -> None:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
            await asyncio.gather(*(self._client(n, http) for n in range(self.clients)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._thread.join(60)


def readyz(url: str) -> dict:
    return httpx.get(url + "/readyz", timeout=30).json()


def _utc(ts: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(ts)


def wait_all(reg: Registry, urls: list[str], what: str, timeout: float = 2.0) -> float:
    """Seconds from the alias's latest record to the moment the last server was answering from it
    (or from a later one: a server may go straight to the record after it). Each server's readyz
    says which record it serves and since when, so a slow readyz under load does not count."""
    head = reg.aliases.get("production")
    answers: dict[str, dict] = {}
    deadline = time.monotonic() + timeout + 30
    while len(answers) < len(urls):
        assert time.monotonic() < deadline, f"{what}: record {head.seq} not served by {set(urls) - set(answers)}"
        for u in urls:
            if u not in answers and (r := readyz(u))["record"]["seq"] >= head.seq:
                answers[u] = r
        time.sleep(0.05)
    took = max((_utc(r["record"]["switched_at"]) - _utc(head.ts)).total_seconds() for r in answers.values())
    assert took < timeout, f"{what}: a server switched {took:.2f} s after the record (more than {timeout} s)"
    return took


def wait_store(reg: Registry, predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = reg.aliases.get("production")
        if predicate(state):
            return state
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s: {reg.aliases.get('production')}")


def _bridge_and_its_full_index(s, model_dir) -> tuple[str, str]:
    """A bridge (issue #35) to production's index ``a`` from tiny@3, a version whose weights equal
    tiny@1's (so its bridge agrees with ``a`` and the rollback policy leaves it be: the policy's own
    judgement of a bridge is tested with ``d``'s model in test_server.py), and tiny@3's full index."""
    from embedops.app.bridges import fit_bridge_adapter
    from embedops.reembed import IndexBuild

    s.reg.models.register("tiny", model_dir, parent="tiny@1")
    bridge = fit_bridge_adapter(s.reg, "tiny@3", s.a.index_id, sample=60, holdout=0.15).adapter_id
    return bridge, IndexBuild(s.reg, "tiny@3", "ops").run().index.index_id


def test_two_servers_under_load_agree_on_every_switch_and_answer_from_one_index(live_store, tmp_path,
                                                                                 tiny_model_dir):
    s = live_store
    (tmp_path / "embedops.toml").write_text(POLICY)
    bridge, full = _bridge_and_its_full_index(s, tiny_model_dir)
    servers = [start_serve(s.uri, tmp_path / f"serve-{i}.log", "--policy", str(tmp_path / "embedops.toml"))
               for i in range(2)]
    try:
        for p in servers:
            assert p.wait_ready()["index_id"] == s.a.index_id
        urls = [p.url for p in servers]
        qs = queries(32, seed=3)
        pairs = [qs[i:i + 2] for i in range(0, len(qs), 2)]
        searcher = Searcher(s.reg, runtime=ServeSettings().runtime)  # the runtime the servers embed with
        expected = {(target, p): [[h.id for h in hs] for hs in searcher.open(target).search(pair, K)]
                    for target in (s.a.index_id, s.b.index_id, s.d.index_id, bridge, full)
                    for p, pair in enumerate(pairs)}
        seen: dict[str, float] = {}
        with Load(urls, expected, pairs) as load:
            time.sleep(1.0)
            authorise(s.reg, s.b)
            s.reg.promote(s.b.index_id)
            seen["promote"] = wait_all(s.reg, urls, "promote")
            time.sleep(0.5)
            s.reg.rollback(reason="test: rollback under load")
            seen["rollback"] = wait_all(s.reg, urls, "rollback")
            authorise(s.reg, s.b)  # a fresh report: production moved since the last one
            s.reg.start_canary(s.b.index_id, percent=30)
            seen["canary start"] = wait_all(s.reg, urls, "canary start")
            time.sleep(0.5)
            s.reg.abort_canary(reason="test: abort under load")
            seen["canary abort"] = wait_all(s.reg, urls, "canary abort")

            s.reg.start_canary(s.d.index_id, percent=50, override=True, reason="test: a canary that disagrees")
            seen["canary start (d)"] = wait_all(s.reg, urls, "canary start (d)")
            aborted = wait_store(s.reg, lambda st: st.action == "canary.abort", "the automatic canary abort")
            seen["automatic abort"] = wait_all(s.reg, urls, "automatic abort")

            s.reg.promote(s.d.index_id, override=True, reason="test: a promotion that disagrees")
            seen["promote (d)"] = wait_all(s.reg, urls, "promote (d)")
            rolled = wait_store(s.reg, lambda st: st.action == "rollback", "the automatic rollback")
            seen["automatic rollback"] = wait_all(s.reg, urls, "automatic rollback")
            for u in urls:  # both back where the automatic rollback put production, no canary
                r = readyz(u)
                assert r["index_id"] == s.a.index_id and "canary" not in r and r["record"]["seq"] == rolled.seq

            # a bridge: promote, roll back, promote again, then its model's full index takes over
            for step, target, name in [("promote", bridge, "bridge"), ("rollback", None, "bridge"),
                                       ("promote", bridge, "bridge again"), ("promote", full, "full index")]:
                time.sleep(0.5)
                if step == "rollback":
                    s.reg.rollback(reason="test: roll the bridge back under load")
                else:
                    authorise(s.reg, s.reg.target(target))
                    s.reg.promote(target)
                seen[f"{step} ({name})"] = wait_all(s.reg, urls, f"{step} ({name})")
                if target == bridge:
                    bridged = [readyz(u) for u in urls]
            time.sleep(0.5)
        assert load.failures == [], load.failures[:5]
        assert load.mixed == [], load.mixed[:5]  # every response is exactly what its one target answers
        assert load.ok > 200 and load.answered_by == {s.a.index_id, s.b.index_id, s.d.index_id, bridge, full}
        for r in bridged:  # both servers say a bridge answers: tiny@3 through its adapter over a's index
            assert r["index_id"] == bridge and r["bridge"]["index_id"] == s.a.index_id
        assert s.reg.aliases.get("production").value == full
        assert [h.value for h in s.reg.aliases.history("production")][-4:] == [bridge, s.a.index_id, bridge, full]
        assert load.routes == {"stable", "canary"}
        assert aborted.automatic and aborted.reason.startswith("automatic: canary agreement")
        assert rolled.automatic and rolled.value == s.a.index_id and "production agreement" in rolled.reason
        assert aborted.actor.startswith("embedops serve (") and rolled.actor.startswith("embedops serve (")
        automatic = [h for h in s.reg.aliases.history("production") if h.automatic]
        assert len(automatic) == 2  # two servers judged, one switch each: the other lost the compare-and-swap
        assert max(seen.values()) < 2.0, seen
        opened = [line for u in urls for line in httpx.get(u + "/metrics").text.splitlines()
                  if line.startswith(("embedops_switch_open_seconds_sum", "embedops_switch_open_seconds_count"))]
        print("\nswitch visible on both servers after (s):", {k: round(v, 2) for k, v in seen.items()},
              f"requests ok: {load.ok}; opening:", opened)
    except BaseException:
        for p in servers:  # where each server's threads are, for the failure report
            print(p.stacks())
        raise
    finally:
        for p in servers:
            p.stop()


def test_a_server_killed_with_sigkill_comes_back_ready_on_the_current_target(live_store, tmp_path):
    s = live_store
    server = start_serve(s.uri, tmp_path / "serve.log")
    try:
        assert server.wait_ready()["index_id"] == s.a.index_id
        assert httpx.post(server.url + "/v1/search", json={"query": "kafka lag", "k": 3}).status_code == 200
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        authorise(s.reg, s.b)
        s.reg.promote(s.b.index_id)  # the alias moves while no server runs
        again = start_serve(s.uri, tmp_path / "serve.log", port=server.port)
        try:
            ready = again.wait_ready()
            assert ready["index_id"] == s.b.index_id and ready["writes"]["ready"]
            body = httpx.post(again.url + "/v1/search", json={"query": "kafka lag", "k": 3}).json()
            assert body["index_id"] == s.b.index_id
        finally:
            again.stop()
    finally:
        server.stop()


def _chmod_tree(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def _root_cannot_be_confined() -> str | None:
    """Why a read-only store cannot be shown here, or None (root ignores file modes; a user namespace
    takes that power away from the server process only)."""
    if os.geteuid() != 0:
        return None
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--user", "true"]).returncode != 0:
        return "runs as root and cannot start a process in a user namespace (unshare --user), so file modes bind nobody"
    return None


def test_a_store_that_turns_read_only_keeps_serving_and_reports_writes_not_ready(live_store, tmp_path):
    why = _root_cannot_be_confined()
    if why:
        pytest.skip(why)
    s = live_store
    s.reg.promote(s.d.index_id, "shadow", override=True, reason="shadow candidate")
    store = s.reg.store.root
    server = start_serve(s.uri, tmp_path / "serve.log", "--shadow-alias", "shadow", "--shadow-fraction", "1",
                         unprivileged=True)
    try:
        assert server.wait_ready()["writes"] == {"ready": True, "reason": None}
        deadline = time.monotonic() + 5
        while "shadow" not in readyz(server.url):
            assert time.monotonic() < deadline, "the server did not follow the shadow alias"
            time.sleep(0.05)
        for q in queries(5):
            assert httpx.post(server.url + "/v1/search", json={"query": q, "k": K}).status_code == 200
        deadline = time.monotonic() + 15
        while len(s.reg.live.read(kind="shadow")) < 5:
            assert time.monotonic() < deadline, "the shadow comparisons never reached the store"
            time.sleep(0.1)

        _chmod_tree(store, writable=False)
        try:
            deadline = time.monotonic() + 15
            while readyz(server.url)["writes"]["ready"]:
                assert time.monotonic() < deadline, "the server never noticed that the store refuses writes"
                httpx.post(server.url + "/v1/search", json={"query": "kafka lag", "k": K})
                time.sleep(0.2)
            ready = readyz(server.url)
            assert ready["ready"] and not ready["writes"]["ready"] and "Permission" in ready["writes"]["reason"]
            for q in queries(10, seed=5):  # reads go on
                r = httpx.post(server.url + "/v1/search", json={"query": q, "k": K})
                assert r.status_code == 200 and r.json()["index_id"] == s.a.index_id
            authorise(s.reg, s.b)  # this process still writes: a person promotes meanwhile
            s.reg.promote(s.b.index_id)
            deadline = time.monotonic() + 2
            while readyz(server.url)["index_id"] != s.b.index_id:
                assert time.monotonic() < deadline, "a server on a read-only store stopped following the alias"
                time.sleep(0.05)
            assert "embedops_store_writable 0.0" in httpx.get(server.url + "/metrics").text
        finally:
            _chmod_tree(store, writable=True)
        deadline = time.monotonic() + 15
        while not readyz(server.url)["writes"]["ready"]:
            assert time.monotonic() < deadline, "writes did not come back once the store took them again"
            httpx.post(server.url + "/v1/search", json={"query": "kafka lag", "k": K})
            time.sleep(0.2)
    finally:
        server.stop()


def test_worker_processes_get_the_same_settings_and_follow_the_alias(live_store, tmp_path):
    s = live_store
    s.reg.promote(s.d.index_id, "shadow", override=True, reason="shadow candidate")
    server = start_serve(s.uri, tmp_path / "serve.log", "--workers", "2", "--shadow-alias", "shadow",
                         "--shadow-fraction", "0.5", "--check-interval", "0.2")
    try:
        server.wait_ready(90)
        deadline = time.monotonic() + 10
        while True:  # each worker follows the shadow alias on its own first tick
            answers = [readyz(server.url) for _ in range(8)]
            if all(a.get("shadow") for a in answers) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert all(a.get("shadow") == {"alias": "shadow", "index_id": s.d.index_id, "fraction": 0.5} for a in answers)
        authorise(s.reg, s.b)
        s.reg.promote(s.b.index_id)
        deadline = time.monotonic() + 2
        while not all(readyz(server.url)["index_id"] == s.b.index_id for _ in range(8)):
            assert time.monotonic() < deadline, "not every worker followed the promotion within 2 s"
            time.sleep(0.05)
    finally:
        server.stop()
