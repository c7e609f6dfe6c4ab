"""The GPU check of issue #18, run by ``bench/gpu_check.sh`` on a lent GPU machine (or, with
``--quick``, on a CPU to test every step first). Writes one JSON of results; each step is recorded
even when another fails.

    python3 bench/gpu_check.py --payload /tmp/gpucheck/payload --out OUT/gpu_check.json [--quick]

Steps:
1. ``env``: GPU, driver, library versions, ONNX Runtime providers, CPU.
2. ``parity``: embedops' fp16 export of all-MiniLM-L6-v2 on CUDA against sentence-transformers torch
   fp32 embeddings computed on the CPU when the payload was packed (min and mean cosine).
3. ``quality``: SciFact test nDCG@10 with the fp16 export on CUDA (docs and queries), to compare with
   the CPU figures in docs/BENCHMARKS.md.
4. ``throughput``: one run, side by side on the same GPU, of 20,000+ SciFact texts (the corpus
   repeated): embedops ONNX fp16 on CUDA at a few batch sizes and length buckets; sentence-
   transformers torch fp16 and fp32 (same architecture, random weights: the payload carries no torch
   weights); sentence-transformers ``backend="onnx"`` on CUDA where it can load.
5. ``ratios`` (issue #34): GPU only, the same pre-tokenised batches through torch fp16 and embedops'
   ONNX fp16; end to end, embedops' build path with ONNX Runtime against the same path with torch;
   medians of 3 interleaved passes. These, not ``throughput``'s ratio against ``encode()``, say what
   the GPU path gains.
6. ``train_bf16``: a few steps of ``embedops.trainer.train`` in bf16 on the GPU (MNRL, batch 32, three
   mined negatives), seconds per step and peak GPU memory.
7. ``ray_build``: a Ray build with one GPU actor (the tiny model's fp16 export from the payload's store)
   into LanceDB: which provider each actor ran, and that the index is ready and whole.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RESULTS: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}


def step(name: str):
    """Run one step, record its result or its error, never stop the check."""
    def wrap(fn):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                result = {"ok": True, **(fn(*args, **kwargs) or {})}
            except Exception as exc:  # a failed step is a finding, not the end of the check
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                          "trace": traceback.format_exc()[-3000:]}
            result["seconds"] = round(time.perf_counter() - t, 2)
            RESULTS["steps"][name] = result
            print(f"[{name}] {'ok' if result['ok'] else 'FAILED'} in {result['seconds']} s: "
                  f"{json.dumps({k: v for k, v in result.items() if k not in ('trace',)})[:1500]}", flush=True)
            _save()
            return result
        return run
    return wrap


def _save() -> None:
    out = Path(RESULTS["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=1, default=str))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _texts(payload: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    from embedops.corpus import doc_text

    ids, texts = [], []
    with (payload / "scifact" / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            ids.append(d["_id"])
            texts.append(doc_text(d.get("title", ""), d.get("text", "")))
            if limit and len(ids) >= limit:
                break
    return ids, texts


def _device() -> str:
    return "cuda" if _cuda() else "cpu"


@step("env")
def env() -> dict:
    import onnxruntime as ort
    import sentence_transformers
    import torch
    import transformers

    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip() \
        if _cuda() else "none"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"gpu": gpu, "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__, "onnxruntime": ort.__version__,
            "ort_providers": ort.get_available_providers()}


@step("parity")
def parity(payload: Path) -> dict:
    from embedops.encoding import OnnxEncoder

    enc = OnnxEncoder(payload / "minilm-fp16", device=_device())
    texts = json.loads((payload / "ref-texts.json").read_text())
    ref = np.load(payload / "ref-st-fp32.npy")
    got = enc.encode(texts)
    cos = np.sum(got * ref, axis=1)
    return {"provider": enc.provider, "texts": len(texts), "min_cosine": round(float(cos.min()), 5),
            "mean_cosine": round(float(cos.mean()), 6), "threshold": 0.99, "passes": bool(cos.min() >= 0.99)}


@step("quality")
def quality(payload: Path, quick: bool) -> dict:
    from embedops.beir import read_qrels, read_queries
    from embedops.encoding import OnnxEncoder
    from embedops.metrics import evaluate, mean_metrics

    qrels = read_qrels(payload / "scifact" / "qrels" / "test.tsv")
    queries = read_queries(payload / "scifact" / "queries.jsonl", only=set(qrels))
    ids, texts = _texts(payload, 400 if quick else None)
    enc = OnnxEncoder(payload / "minilm-fp16", device=_device())
    docs = enc.encode(texts)
    qids = sorted(queries)
    q = enc.encode([queries[i] for i in qids])
    scores = q @ docs.T
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {qid: {ids[j]: float(scores[r, j]) for j in top[r]} for r, qid in enumerate(qids)}
    m = mean_metrics(evaluate(qrels, run, k=10))
    return {"provider": enc.provider, "docs": len(ids), "queries": len(qids),
            "ndcg@10": round(m["ndcg@10"], 2), "recall@10": round(m["recall@10"], 2)}


def _rate(fn, texts: list[str]) -> float:
    t = time.perf_counter()
    fn(texts)
    if _cuda():
        import torch

        torch.cuda.synchronize()
    return len(texts) / (time.perf_counter() - t)


def _random_st_model(payload: Path, work: Path) -> Path:
    """all-MiniLM-L6-v2's architecture and tokenizer with random weights, saved as safetensors."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModel

    target = work / "minilm-random"
    if target.is_dir():
        return target
    shutil.copytree(payload / "minilm-config", target)
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(str(target)))
    model.save_pretrained(str(target), safe_serialization=True)
    return target


@step("throughput")
def throughput(payload: Path, work: Path, quick: bool) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from embedops.encoding import OnnxEncoder

    _, corpus = _texts(payload, 48 if quick else None)
    repeat = 1 if quick else 4
    texts = corpus * repeat
    warm = texts[:1024]
    out: dict = {"texts": len(texts), "runs": []}
    device = _device()

    def record(name: str, fn, **info) -> None:
        fn(warm)
        rates = [_rate(fn, texts) for _ in range(2 if name.startswith("embedops") else 1)]
        row = {"path": name, "docs_per_s": [round(r) for r in rates], "best": round(max(rates)), **info}
        out["runs"].append(row)
        print(f"  {name}: {row['docs_per_s']} docs/s", flush=True)

    for batch in ((64,) if quick else (256, 512, 1024)):
        enc = OnnxEncoder(payload / "minilm-fp16", device=device, batch_size=batch)
        record(f"embedops onnx fp16 b{batch}", enc.encode, provider=enc.provider, batch=batch)
    enc = OnnxEncoder(payload / "minilm-fp16", device=device, batch_size=512, buckets=(64, 128, 192, 256))
    record("embedops onnx fp16 b512 buckets/64", enc.encode, provider=enc.provider, batch=512)

    # the pipeline's two bounds: tokenising alone (all cores) and the GPU alone (batches built beforehand)
    enc = OnnxEncoder(payload / "minilm-fp16", device=device, batch_size=512)
    t = time.perf_counter()
    toks = enc._tokenize(texts)
    out["tokenize_only_docs_per_s"] = round(len(texts) / (time.perf_counter() - t))
    # where tokenising's time goes: the Rust tokenizer on all cores vs turning its ids into Python lists
    t = time.perf_counter()
    encodings = enc._encode_batch(texts)
    out["tokenize_rust_docs_per_s"] = round(len(texts) / (time.perf_counter() - t))
    t = time.perf_counter()
    _ = [e.ids for e in encodings]
    out["ids_to_lists_docs_per_s"] = round(len(texts) / (time.perf_counter() - t))
    del encodings, _
    order = sorted(range(len(texts)), key=lambda i: len(toks.ids[i]))
    feeds = [enc._feeds(toks, order[i: i + 512]) for i in range(0, len(order), 512)]
    for f in feeds[:2]:
        enc._run(f)
    t = time.perf_counter()
    for f in feeds:
        enc._run(f)
    out["inference_only_docs_per_s"] = round(len(texts) / (time.perf_counter() - t))
    out["widths"] = sorted({f["input_ids"].shape[1] for f in feeds})
    print(f"  tokenize only {out['tokenize_only_docs_per_s']} docs/s (Rust part {out['tokenize_rust_docs_per_s']}, "
          f"ids to lists {out['ids_to_lists_docs_per_s']}), inference only "
          f"{out['inference_only_docs_per_s']} docs/s", flush=True)

    model_dir = _random_st_model(payload, work)
    for precision in ("fp16", "fp32"):
        if precision == "fp16" and device == "cpu":
            continue
        st = SentenceTransformer(str(model_dir), device=device)
        if precision == "fp16":
            st = st.half()
        for batch in ((64,) if quick else (512,)):
            record(f"sentence-transformers torch {precision} b{batch}",
                   lambda ts, st=st, batch=batch: st.encode(ts, batch_size=batch, convert_to_numpy=True),
                   batch=batch, attention=getattr(st[0].auto_model.config, "_attn_implementation", None))
        del st
        if device == "cuda":
            torch.cuda.empty_cache()
    try:
        st_onnx = SentenceTransformer(str(model_dir), device=device, backend="onnx",
                                      model_kwargs={"provider": "CUDAExecutionProvider" if device == "cuda"
                                                    else "CPUExecutionProvider"})
        record("sentence-transformers backend=onnx", lambda ts: st_onnx.encode(ts, batch_size=256), batch=256)
    except Exception as exc:
        out["st_backend_onnx"] = f"could not load: {type(exc).__name__}: {str(exc)[:400]}"
    best = {r["path"]: r["best"] for r in out["runs"]}
    ours = max(v for k, v in best.items() if k.startswith("embedops"))
    theirs = max((v for k, v in best.items() if k.startswith("sentence-transformers")), default=None)
    out["embedops_best"] = ours
    out["sentence_transformers_best"] = theirs
    out["ratio"] = round(ours / theirs, 2) if theirs else None
    return out


def _median_rates(paths: dict, passes: int, n: int) -> dict:
    """Each path's docs/s over ``passes`` passes, interleaved (the order flips every pass, so neither
    path always runs on a warmer machine); the median of each, and every pass kept."""
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for k in range(passes):
        for name in (list(paths) if k % 2 == 0 else list(reversed(paths))):
            t = time.perf_counter()
            paths[name]()
            if _cuda():
                import torch

                torch.cuda.synchronize()
            rates[name].append(n / (time.perf_counter() - t))
    return {name: {"docs_per_s": [round(r) for r in rs], "median": round(float(np.median(rs)))}
            for name, rs in rates.items()}


@step("ratios")
def ratios(payload: Path, work: Path, quick: bool) -> dict:
    """Issue #34's two ratios, on identical inputs. (a) GPU only: the same pre-tokenised, length-sorted
    batches through torch fp16 (SDPA attention, mean pooling, normalised) and through embedops' ONNX
    fp16 session; (b) end to end: embedops' build path (``OnnxEncoder.encode``: its tokenizer
    overlapped with inference) against the same path with torch in place of ONNX Runtime. Median of
    3 interleaved passes each, after a warm-up. torch runs random weights of the same architecture
    (the payload carries no torch weights; speed does not depend on the values)."""
    import torch
    from transformers import AutoModel

    from embedops.encoding import OnnxEncoder

    device = _device()
    _, corpus = _texts(payload, 48 if quick else None)
    texts = corpus * (1 if quick else 4)
    batch = 32 if quick else 256  # embedops' CUDA default
    model = AutoModel.from_pretrained(str(_random_st_model(payload, work)), attn_implementation="sdpa").to(device).eval()
    precision = "fp16" if device == "cuda" else "fp32"
    if device == "cuda":
        model = model.half()

    def torch_run(feeds: dict) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in feeds.items()}
            hidden = model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()

    class TorchFed(OnnxEncoder):
        """embedops' encoder with torch running each batch: the same tokenizer, batches and overlap."""

        def _run(self, feeds):
            return torch_run(feeds)

    onnx = OnnxEncoder(payload / "minilm-fp16", device=device, batch_size=batch)
    fed = TorchFed(payload / "minilm-fp16", device=device, batch_size=batch)
    toks = onnx._tokenize(texts)
    order = sorted(range(len(texts)), key=lambda i: len(toks.ids[i]))
    feeds = [onnx._feeds(toks, order[i: i + batch]) for i in range(0, len(order), batch)]

    def through(run):
        def all_batches():
            for f in feeds:
                run(f)
        return all_batches

    for f in feeds[:2]:  # warm-up: CUDA kernels, cuDNN/SDPA choice, ONNX Runtime's arena
        onnx._run(f), torch_run(f)
    onnx.encode(texts[: 4 * batch]), fed.encode(texts[: 4 * batch])
    names = ("embedops onnx fp16", f"torch {precision} sdpa")
    gpu_only = _median_rates({names[0]: through(onnx._run), names[1]: through(torch_run)}, 3, len(texts))
    end_to_end = _median_rates({"embedops build path, onnx fp16": lambda: onnx.encode(texts),
                                f"embedops build path, torch {precision}": lambda: fed.encode(texts)}, 3, len(texts))
    ratio = lambda rows: round(rows[0]["median"] / rows[1]["median"], 2)  # noqa: E731
    out = {"texts": len(texts), "batch": batch, "device": device, "provider": onnx.provider,
           "gpu_only": gpu_only, "end_to_end": end_to_end,
           "gpu_only_ratio": ratio(list(gpu_only.values())), "end_to_end_ratio": ratio(list(end_to_end.values()))}
    print(f"  GPU only {out['gpu_only_ratio']}x, end to end {out['end_to_end_ratio']}x", flush=True)
    return out


@step("train_bf16")
def train_bf16(payload: Path, work: Path, quick: bool) -> dict:
    import torch

    from embedops.registry import Registry
    from embedops.store import Store
    from embedops.trainer.pairs import TrainingPair
    from embedops.trainer.train import TrainConfig, train

    steps, batch = (2, 8) if quick else (6, 32)
    reg = Registry(Store.open(str(work / "store")))
    reg.models.register("minilm", _random_st_model(payload, work))
    _, texts = _texts(payload, 4 * steps * batch)
    n = steps * batch
    pairs = [TrainingPair(f"{texts[i][:60]} evidence", texts[i], f"d{i}", [texts[n + i], texts[2 * n + i],
                                                                          texts[3 * n + i]]) for i in range(n)]
    precision = "bf16" if _cuda() else "fp32"
    config = TrainConfig(epochs=1, batch_size=batch, eval_fraction=0.0, max_steps=steps, mixed_precision=precision,
                         interpolate=None, max_seq_length=None)  # the model's own 256 tokens, as measured before
    if _cuda():
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    result = train(reg, "minilm@1", pairs, config=config)
    seconds = time.perf_counter() - t
    out = {"precision": precision, "steps": steps, "batch": batch, "seconds_total": round(seconds, 2),
           "seconds_per_step_incl_setup": round(seconds / steps, 3),
           "registered": getattr(getattr(result, "model", None), "ref", None)}
    if _cuda():
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


@step("ray_build")
def ray_build(payload: Path, work: Path, quick: bool) -> dict:
    """A Ray build with one GPU actor (the tiny model's fp16 export, stored when the payload was packed)."""
    import shutil

    from embedops.registry import Registry
    from embedops.reembed.build import IndexBuild
    from embedops.reembed.ray_engine import RayEngine, shutdown
    from embedops.store import Store

    if not (payload / "store").is_dir():
        raise RuntimeError("skipped: the payload has no store (packed with --no-store)")
    store_dir = work / "ray-store"
    shutil.copytree(payload / "store", store_dir)
    reg = Registry(Store.open(str(store_dir)))
    reg.corpora.add("scifact", payload / "scifact" / "corpus.jsonl")
    gpu = 1 if _cuda() else 0
    engine = RayEngine(workers=1, gpus_per_worker=gpu, threads_per_worker=2 if quick else 8,
                       batch_size=256 if gpu else 32)
    try:
        report = IndexBuild(reg, "tiny@1", "scifact", precision="fp16", engine=engine).run()
    finally:
        shutdown()
    return {"status": report.index.status.value, "embedded": report.embedded, "providers": report.providers_used,
            "actor_providers": engine.actor_providers, "docs_per_s": round(report.docs_per_second),
            "integrity": report.checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payload", type=Path, default=Path("/tmp/gpucheck/payload"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a trial run on a CPU")
    args = parser.parse_args()
    RESULTS["out"] = str(args.out)
    RESULTS["quick"] = args.quick
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="gpucheck-"))
    env()
    parity(args.payload)
    quality(args.payload, args.quick)
    throughput(args.payload, work, args.quick)
    ratios(args.payload, work, args.quick)
    train_bf16(args.payload, work, args.quick)
    ray_build(args.payload, work, args.quick)
    RESULTS["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _save()
    keep = ("ok", "error", "seconds", "embedops_best", "sentence_transformers_best", "ratio", "min_cosine",
            "ndcg@10", "provider", "seconds_per_step_incl_setup", "peak_gpu_mib", "gpu_only_ratio",
            "end_to_end_ratio")
    for name, result in RESULTS["steps"].items():
        print(f"SUMMARY {name}: {json.dumps({k: v for k, v in result.items() if k in keep})[:800]}")


if __name__ == "__main__":
    main()
