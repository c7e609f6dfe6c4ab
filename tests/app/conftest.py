"""Fixtures for the serving tests: a store with three ready indexes of one 60-document corpus, and
real uvicorn servers on loopback (in a thread, or as `embedops serve` processes)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from helpers import write_jsonl

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


@pytest.fixture
def live_store(tmp_path, tiny_model_dir, tiny_model_b) -> LiveStore:
    from embedops.reembed import IndexBuild
    from embedops.registry import Registry
    from embedops.store import Store

    uri = str(tmp_path / "store")
    reg = Registry(Store.open(uri))
    reg.models.register("tiny", tiny_model_dir)
    reg.models.register("tiny", tiny_model_b, parent="tiny@1")
    reg.corpora.add("ops", write_jsonl(tmp_path / "docs.jsonl", runbook_docs()))
    a = IndexBuild(reg, "tiny@1", "ops").run().index
    b = IndexBuild(reg, "tiny@1", "ops").run().index
    d = IndexBuild(reg, "tiny@2", "ops").run().index
    reg.promote(a.index_id, override=True, reason="first index")
    return LiveStore(reg, uri, a, b, d)


@contextlib.contextmanager
def running_app(app):
    """``app`` served by uvicorn on a free loopback port in a thread; yields an httpx client."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServeProcess:
    """An `embedops serve` process on loopback."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.log.read_text()}"
            try:
                r = httpx.get(self.url + "/readyz", timeout=2)
                last = r.text
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise AssertionError(f"serve not ready within {timeout} s: {last}\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_serve(store_uri: str, log: Path, *args: str, port: int | None = None, unprivileged: bool = False,
                env: dict | None = None) -> ServeProcess:
    """Start `embedops --store URI serve --port P ARGS`. ``unprivileged``: when this runs as root, in a
    new user namespace (``unshare --user``), where file modes bind the server as they bind any user
    while this process keeps writing as root."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "embedops", "--store", store_uri, "serve", "--port", str(port), *args]
    if unprivileged and os.geteuid() == 0:
        cmd = ["unshare", "--user", *cmd]
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env)
    return ServeProcess(proc, port, log)
