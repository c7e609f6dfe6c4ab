"""Fixtures for the serving tests: a store with three ready indexes of one 60-document corpus, and
real uvicorn servers on loopback (in a thread, or as `embedops serve` processes)."""

from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from helpers import ServeProcess, start_serve, write_jsonl  # noqa: F401  (the serving tests import them from here)

WORDS = ("kafka lag broker postgres replica failover dns certificate expiry renewal disk pressure node pod redis "
         "memory cache eviction latency timeout retry queue backlog deploy rollback canary shard index vector "
         "search").split()


def runbook_docs(n: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"_id": f"d{i}", "title": f"Runbook {i}", "text": " ".join(rng.choice(WORDS) for _ in range(12))}
            for i in range(n)]


def queries(n: int = 24, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(n)]


@dataclass
class LiveStore:
    """production -> ``a``; ``b`` another index of the same model (agrees with a); ``d`` an index of
    another model (disagrees: overlap@5 with a is about 0.26)."""

    reg: object
    uri: str
    a: object
    b: object
    d: object


@pytest.fixture(scope="session")
def _live_store_template(tmp_path_factory, tiny_model_dir, tiny_model_b):
    """Built once per session; each test gets a copy (a store is relocatable: every path is relative)."""
    from embedops.reembed import IndexBuild
    from embedops.registry import Registry
    from embedops.store import Store

    root = tmp_path_factory.mktemp("live-store")
    reg = Registry(Store.open(str(root / "store")))
    reg.models.register("tiny", tiny_model_dir)
    reg.models.register("tiny", tiny_model_b, parent="tiny@1")
    reg.corpora.add("ops", write_jsonl(root / "docs.jsonl", runbook_docs()))
    ids = [IndexBuild(reg, ref, "ops").run().index.index_id for ref in ("tiny@1", "tiny@1", "tiny@2")]
    reg.promote(ids[0], override=True, reason="first index")
    return root / "store", ids


@pytest.fixture
def live_store(tmp_path, _live_store_template) -> LiveStore:
    from embedops.registry import Registry
    from embedops.store import Store

    template, ids = _live_store_template
    shutil.copytree(template, tmp_path / "store")
    uri = str(tmp_path / "store")
    reg = Registry(Store.open(uri))
    a, b, d = (reg.indexes.get(i) for i in ids)
    return LiveStore(reg, uri, a, b, d)


@contextlib.contextmanager
def running_app(app, **config):
    """``app`` served by uvicorn on a free loopback port in a thread; yields an httpx client.
    ``config``: more uvicorn settings (logging, say)."""
    settings = {"log_level": "warning", "timeout_keep_alive": 75} | config
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, **settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)




@dataclass
class DashboardStore:
    """``live_store`` after a guarded promotion of ``b`` (report ``report``) and three live comparisons."""

    live: LiveStore
    report: object
    overlaps: list


@pytest.fixture
def dashboard_store(live_store) -> DashboardStore:
    import datetime as dt

    from helpers import REPORT_GATES, binding_for, put_report
    from embedops.registry.live import LiveComparison

    s = live_store
    report = put_report(s.reg, binding_for(s.reg, s.b), gates=REPORT_GATES)
    s.reg.promote(s.b.index_id)
    now = dt.datetime.now(dt.timezone.utc)
    overlaps = [1.0, 0.8, 0.6]
    s.reg.live.append([LiveComparison((now - dt.timedelta(minutes=i)).isoformat(timespec="milliseconds"), "test:1",
                                      "shadow", "production", s.b.index_id, s.d.index_id, f"query {i}", 5, o, 0.5,
                                      12.0, 15.0, ("d1",), ("d2",)) for i, o in enumerate(overlaps)])
    return DashboardStore(s, report, overlaps)
