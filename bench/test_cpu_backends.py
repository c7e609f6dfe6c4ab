"""CPU inference paths side by side on SciFact (5,183 abstracts), one run, one machine (issue #18):
sentence-transformers torch fp32, its ``backend="onnx"`` exports (plain and optimised O1-O3) and its
dynamically quantised int8 export (for this CPU's instruction set), its ``backend="openvino"`` where
optimum-intel is installed, embedops' ONNX fp32 and int8 through ONNX Runtime, and the same embedops
graphs through OpenVINO's runtime (it reads ONNX directly; pooling stays in the graph). Each path:
docs/s over the corpus, SciFact test nDCG@10 (trec_eval), and the share of queries whose top 10
equals torch fp32's. It also prints which runtime embedops picks by default on this CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python -m pytest bench/test_cpu_backends.py -s

``EMBEDOPS_BENCH_DOCS=N`` embeds only the first N abstracts (a quicker speed ranking; nDCG@10 then
covers only the test queries whose relevant abstracts are among them, so it is not the published
figure). ``EMBEDOPS_BENCH_PATHS=a,b`` runs only those paths (and torch fp32, the baseline).

sentence-transformers' ONNX and OpenVINO backends need optimum(-onnx / -intel), which needs
transformers < 4.58: on sentence-transformers 6 / transformers 5 those paths are skipped, saying so;
measure them from an environment of the old stack (docs/BENCHMARKS.md says which figures came from where).
"""

import os
import shutil
import time
from pathlib import Path

import numpy as np

from conftest import record
from embedops.beir import read_qrels, read_queries
from embedops.corpus import doc_text, read_documents
from embedops.encoding import OnnxEncoder, export_onnx
from embedops.errors import UsageError
from embedops.metrics import evaluate, mean_metrics
from helpers import bundled_model_path


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _quantisation_target(flags: set[str]) -> str:
    """sentence-transformers' int8 export configs, best first, as far as this CPU supports them."""
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def test_cpu_backends_scifact(benchmark, scifact, tmp_path):
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
    )

    docs = read_documents(scifact)
    if os.environ.get("EMBEDOPS_BENCH_DOCS"):
        docs = docs[: int(os.environ["EMBEDOPS_BENCH_DOCS"])]
    texts = [doc_text(d.title, d.text) for d in docs]
    ids = [d.id for d in docs]
    kept = set(ids)
    qrels = {q: rel for q, rel in read_qrels(scifact / "qrels" / "test.tsv").items() if kept & set(rel)}
    queries = read_queries(scifact, only=set(qrels))
    q_ids, q_texts = list(queries), list(queries.values())
    model_dir = Path(shutil.copytree(bundled_model_path(), tmp_path / "minilm"))
    flags = _cpu_flags()

    cpu = {"provider": "CPUExecutionProvider"}  # onnxruntime-gpu would also try TensorRT and CUDA
    target = _quantisation_target(flags)

    def st_path(directory: Path, **kwargs):
        m = SentenceTransformer(str(directory), device="cpu", **kwargs)
        return lambda ts: m.encode(ts, batch_size=32, normalize_embeddings=True)

    def st_onnx_export(kind: str) -> str:
        """Export sentence-transformers' optimised or quantised ONNX file; return its name."""
        st_onnx = SentenceTransformer(str(model_dir), device="cpu", backend="onnx", model_kwargs=cpu)
        if kind == "int8":
            export_dynamic_quantized_onnx_model(st_onnx, target, str(model_dir))
            [quantised] = (model_dir / "onnx").glob(f"model_q*int8_{target}.onnx")  # quint8 avx2, qint8 avx512
            return quantised.name
        export_optimized_onnx_model(st_onnx, kind, str(model_dir))
        return f"model_{kind}.onnx"

    def embedops_path(precision: str, runtime: str):
        out = tmp_path / precision
        if not out.is_dir():
            export_onnx(bundled_model_path(), out, precision)
        return OnnxEncoder(out, device="cpu", runtime=runtime).encode

    builders = {
        "st_torch_fp32": lambda: st_path(bundled_model_path()),
        "st_onnx": lambda: st_path(model_dir, backend="onnx", model_kwargs=cpu),
        **{f"st_onnx_{level}": lambda level=level: st_path(
            model_dir, backend="onnx", model_kwargs={"file_name": f"onnx/{st_onnx_export(level)}", **cpu})
           for level in ("O1", "O2", "O3")},
        f"st_onnx_int8_{target}": lambda: st_path(
            model_dir, backend="onnx", model_kwargs={"file_name": f"onnx/{st_onnx_export('int8')}", **cpu}),
        # needs optimum-intel (docs/BENCHMARKS.md says how it was installed beside this stack)
        "st_openvino": lambda: st_path(shutil.copytree(bundled_model_path(), tmp_path / "minilm-ov"),
                                       backend="openvino"),
        **{f"embedops_{label}_{precision}": lambda precision=precision, runtime=runtime: embedops_path(precision, runtime)
           for precision in ("fp32", "int8") for runtime, label in (("onnxruntime", "ort"), ("openvino", "openvino"))},
    }
    wanted = os.environ.get("EMBEDOPS_BENCH_PATHS")  # e.g. st_torch_fp32,st_onnx_O3,embedops_openvino_fp32
    names = ["st_torch_fp32"] + [n for n in builders if n != "st_torch_fp32" and (not wanted or n in wanted.split(","))]
    paths: dict = {}
    for name in names:
        try:
            paths[name] = builders[name]()
        except (ImportError, UsageError) as exc:  # optimum-intel or openvino not installed
            print(f"  {name} skipped: {exc}")
        except Exception as exc:  # sentence-transformers' ONNX backends raise a bare Exception without optimum
            if not name.startswith("st_") or "ptimum" not in str(exc):
                raise
            print(f"  {name} skipped: {exc}")
    defaults = {}
    for precision in ("fp32", "int8"):
        embedops_path(precision, "onnxruntime")  # make sure the export exists
        default = OnnxEncoder(tmp_path / precision, device="cpu")
        print(f"  embedops default CPU runtime for {precision}: {default.runtime} ({default.provider})")
        defaults[precision] = default.provider

    rates, ndcg, tops = {}, {}, {}
    for name, encode in paths.items():
        encode(texts[:64])
        t = time.perf_counter()
        emb = np.asarray(encode(texts), dtype=np.float32)
        rates[name] = len(texts) / (time.perf_counter() - t)
        q = np.asarray(encode(q_texts), dtype=np.float32)
        scores = q @ emb.T
        top = np.argsort(-scores, axis=1)[:, :100]
        run = {qid: {ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(q_ids)}
        ndcg[name] = mean_metrics(evaluate(qrels, run))["ndcg@10"]
        tops[name] = [list(top[i][:10]) for i in range(len(q_ids))]
        print(f"  {name}: {rates[name]:.1f} docs/s, nDCG@10 {ndcg[name]:.2f}", flush=True)
    same_top10 = {name: sum(a == b for a, b in zip(tops[name], tops["st_torch_fp32"])) / len(q_ids) for name in paths}
    base = rates["st_torch_fp32"]
    results = {"docs": len(texts), "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                                                                   "amx_tile", "avx_vnni"}),
               "docs_per_s": rates, "vs_st_torch_fp32": {k: v / base for k, v in rates.items()},
               "ndcg@10": ndcg, "top10_same_as_st_torch_fp32": same_top10,
               "embedops_default_cpu_runtime": defaults}
    benchmark.pedantic(lambda: paths["st_torch_fp32"](texts[:64]), rounds=1, iterations=1)
    benchmark.extra_info.update(results)
    record("cpu_backends_scifact", results)
    assert all(same_top10[n] > 0.95 for n in paths if n.startswith("embedops_") and n.endswith("_fp32"))
