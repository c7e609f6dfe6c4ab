"""What `embedops serve` costs on top of the same search in-process, measured side by side in one run.

all-MiniLM-L6-v2 (bundled) indexes the first ``EMBEDOPS_BENCH_DOCS`` (default 1,000) SciFact
abstracts; the 300 SciFact test queries are sent, k=10:

* in-process: ``Searcher.open(index).search([q], 10)`` plus the titles and snippets a response
  carries, one query at a time (latency, throughput, CPU seconds per query of this process);
* over HTTP: an `embedops serve` process on loopback, one client at a time (latency) and 8 and 32
  concurrent clients (asyncio + httpx: throughput), with the server's CPU seconds per query read
  from /proc (psutil);
* the same server with live shadow traffic (--shadow-fraction 0.1 and 1.0, to a second index of
  the same model): the user's latency must not carry the mirrored work.

Ratios are what to compare; the absolute figures move with the machine and its neighbours. Raw
results: bench/serve-results/<date>-serve-overhead-<runtime>.json.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from conftest import machine, record
from helpers import start_serve  # an `embedops serve` process on loopback, as the serving tests start it

from embedops.app.server import ServeSettings
from embedops.beir import read_qrels, read_queries
from embedops.corpus import read_documents
from embedops.reembed import IndexBuild
from embedops.registry import Registry, Searcher
from embedops.store import Store

K = 10
OUT = Path(__file__).resolve().parent / "serve-results"


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(np.mean(ms))}


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


async def _concurrent(url: str, texts: list[str], clients: int, rounds: int) -> tuple[float, int, list[float]]:
    latencies: list[float] = []
    sent = 0

    async def one(n: int, http: httpx.AsyncClient) -> None:
        nonlocal sent
        for i in range(rounds):
            q = texts[(n * rounds + i) % len(texts)]
            t = time.perf_counter()
            r = await http.post(url + "/v1/search", json={"query": q, "k": K}, headers={"X-Embedops-Client": str(n)})
            latencies.append(1000 * (time.perf_counter() - t))
            assert r.status_code == 200, r.text
            sent += 1

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        start = time.perf_counter()
        await asyncio.gather(*(one(n, http) for n in range(clients)))
        return time.perf_counter() - start, sent, latencies


def _sequential(url: str, texts: list[str]) -> list[float]:
    out = []
    with httpx.Client(timeout=60) as http:
        for q in texts:
            t = time.perf_counter()
            r = http.post(url + "/v1/search", json={"query": q, "k": K})
            out.append(1000 * (time.perf_counter() - t))
            assert r.status_code == 200, r.text
    return out


def _measure_server(uri: str, log: Path, texts: list[str], *args: str) -> dict:
    server = start_serve(uri, log, *args)
    try:
        server.wait_ready(120)
        proc = psutil.Process(server.proc.pid)
        _sequential(server.url, texts[:30])  # warm-up: encoder, table, connection
        cpu0 = _cpu(proc)
        seq = _sequential(server.url, texts)
        cpu_seq = (_cpu(proc) - cpu0) / len(texts)
        out = {"sequential_ms": _percentiles(seq), "sequential_qps": 1000 / float(np.mean(seq)),
               "server_cpu_ms_per_query_sequential": 1000 * cpu_seq}
        for clients in (8, 32):
            cpu0 = _cpu(proc)
            seconds, sent, lat = asyncio.run(_concurrent(server.url, texts, clients, max(1, 600 // clients)))
            out[f"c{clients}"] = {"qps": sent / seconds, "ms": _percentiles(lat),
                                  "server_cpu_ms_per_query": 1000 * (_cpu(proc) - cpu0) / sent}
        metrics = httpx.get(server.url + "/metrics").text
        out["mirror_lines"] = [line for line in metrics.splitlines() if line.startswith("embedops_mirror_queries_total")]
        return out
    finally:
        server.stop()


@pytest.mark.benchmark(group="serve")
def test_server_overhead_against_in_process_search(scifact, tmp_path, benchmark):
    n_docs = int(os.environ.get("EMBEDOPS_BENCH_DOCS", "1000"))
    docs = read_documents(scifact)[:n_docs]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    uri = str(tmp_path / "store")
    reg = Registry(Store.open(uri))
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    reg.corpora.add("scifact", corpus)
    index = IndexBuild(reg, "minilm@1", "scifact").run().index
    twin = IndexBuild(reg, "minilm@1", "scifact").run().index  # the shadow side: same model, another table
    reg.promote(index.index_id, override=True, reason="bench")
    reg.promote(twin.index_id, "shadow", override=True, reason="bench: shadow side")
    texts = list(read_queries(scifact, only=set(read_qrels(scifact / "qrels" / "test.tsv"))).values())

    searcher = Searcher(reg, runtime=ServeSettings().runtime)  # the runtime the server embeds with
    reader = searcher.open(index.index_id)
    for q in texts[:30]:
        reader.search([q], K)

    def in_process(q: str) -> None:
        hits = reader.search([q], K)[0]
        searcher.documents(reader.record, [h.id for h in hits])

    bare, full = [], []
    cpu0 = time.process_time()
    for q in texts:
        t = time.perf_counter()
        reader.search([q], K)
        bare.append(1000 * (time.perf_counter() - t))
    cpu_bare = (time.process_time() - cpu0) / len(texts)
    cpu0 = time.process_time()
    for q in texts:
        t = time.perf_counter()
        in_process(q)
        full.append(1000 * (time.perf_counter() - t))
    cpu_full = (time.process_time() - cpu0) / len(texts)
    benchmark.pedantic(in_process, args=(texts[0],), rounds=20, iterations=1)

    plain = _measure_server(uri, tmp_path / "serve.log", texts)
    shadow_10 = _measure_server(uri, tmp_path / "serve-shadow10.log", texts, "--shadow-alias", "shadow",
                                "--shadow-fraction", "0.1")
    shadow_100 = _measure_server(uri, tmp_path / "serve-shadow100.log", texts, "--shadow-alias", "shadow",
                                 "--shadow-fraction", "1.0")
    base = _percentiles(full)
    data = {
        "docs": len(docs), "queries": len(texts), "k": K,
        "in_process": {"search_ms": _percentiles(bare), "search_and_titles_ms": base,
                       "qps": 1000 / base["mean"], "cpu_ms_per_query": 1000 * cpu_full,
                       "cpu_ms_per_query_search_only": 1000 * cpu_bare},
        "server": plain, "server_shadow_0.1": shadow_10, "server_shadow_1.0": shadow_100,
        "ratios": {
            "server_p50_over_in_process_p50": plain["sequential_ms"]["p50"] / base["p50"],
            "server_p99_over_in_process_p99": plain["sequential_ms"]["p99"] / base["p99"],
            "server_qps_c1_over_in_process_qps": plain["sequential_qps"] / (1000 / base["mean"]),
            "server_cpu_per_query_over_in_process": plain["server_cpu_ms_per_query_sequential"] / (1000 * cpu_full),
            "shadow_0.1_p50_over_plain_p50": shadow_10["sequential_ms"]["p50"] / plain["sequential_ms"]["p50"],
            "shadow_1.0_p50_over_plain_p50": shadow_100["sequential_ms"]["p50"] / plain["sequential_ms"]["p50"],
            "shadow_1.0_p99_over_plain_p99": shadow_100["sequential_ms"]["p99"] / plain["sequential_ms"]["p99"],
            "shadow_1.0_c8_qps_over_plain": shadow_100["c8"]["qps"] / plain["c8"]["qps"],
        },
        "cpu_flags": _cpu_flags(),
        "date": dt.date.today().isoformat(),
        "runtime": ServeSettings().runtime,
    }
    record("serve_overhead", data)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{data['date']}-serve-overhead-{data['runtime']}.json").write_text(json.dumps(data | {"machine": machine()}, indent=2))
    assert plain["sequential_ms"]["p50"] > 0


def _cpu_flags() -> dict:
    from embedops.cpu import cpu_features

    cpu = cpu_features()
    return {"model": cpu.model, "avx512_bf16": cpu.avx512_bf16, "amx": cpu.amx_bf16, "vnni": cpu.vnni, "avx2": cpu.avx2}
