"""CPU inference paths side by side on SciFact (5,183 abstracts), one run, one machine (issue #18):
sentence-transformers torch fp32, its ``backend="onnx"`` exports (plain and optimised O1-O3) and its
dynamically quantised int8 export (for this CPU's instruction set), embedops' ONNX fp32 and int8
through ONNX Runtime, and the same embedops graphs through OpenVINO's runtime where ``openvino`` is
installed (it reads ONNX directly; pooling stays in the graph). Each path: docs/s over the corpus,
SciFact test nDCG@10 (trec_eval), and the share of queries whose top 10 equals torch fp32's.

    HF_HUB_OFFLINE=1 .venv/bin/python -m pytest bench/test_cpu_backends.py -s

``EMBEDOPS_BENCH_DOCS=N`` embeds only the first N abstracts (a quicker speed ranking; nDCG@10 then
covers only the test queries whose relevant abstracts are among them, so it is not the published
figure).
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


def _openvino_run(enc: OnnxEncoder):
    """The encoder's own pipeline (tokenise, sort, buckets) with OpenVINO running its ONNX graph."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(enc.path / "model.onnx"), "CPU")
    output = compiled.output(0)
    return lambda feeds: compiled(feeds)[output]


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
    model_dir = tmp_path / "minilm"
    shutil.copytree(bundled_model_path(), model_dir)
    flags = _cpu_flags()

    paths: dict = {}
    st = SentenceTransformer(str(bundled_model_path()), device="cpu")
    paths["st_torch_fp32"] = lambda ts: st.encode(ts, batch_size=32, normalize_embeddings=True)
    cpu = {"provider": "CPUExecutionProvider"}  # onnxruntime-gpu would also try TensorRT and CUDA
    st_onnx = SentenceTransformer(str(model_dir), device="cpu", backend="onnx", model_kwargs=cpu)
    paths["st_onnx"] = lambda ts, m=st_onnx: m.encode(ts, batch_size=32, normalize_embeddings=True)
    for level in ("O1", "O2", "O3"):
        export_optimized_onnx_model(st_onnx, level, str(model_dir))
        m = SentenceTransformer(str(model_dir), device="cpu", backend="onnx",
                                model_kwargs={"file_name": f"onnx/model_{level}.onnx", **cpu})
        paths[f"st_onnx_{level}"] = lambda ts, m=m: m.encode(ts, batch_size=32, normalize_embeddings=True)
    target = _quantisation_target(flags)
    export_dynamic_quantized_onnx_model(st_onnx, target, str(model_dir))
    [quantised] = (model_dir / "onnx").glob(f"model_q*int8_{target}.onnx")  # quint8 for avx2, qint8 for avx512
    m = SentenceTransformer(str(model_dir), device="cpu", backend="onnx",
                            model_kwargs={"file_name": f"onnx/{quantised.name}", **cpu})
    paths[f"st_onnx_int8_{target}"] = lambda ts, m=m: m.encode(ts, batch_size=32, normalize_embeddings=True)
    for precision in ("fp32", "int8"):
        export_onnx(bundled_model_path(), tmp_path / precision, precision)  # the ST exports rewrote model_dir
        enc = OnnxEncoder(tmp_path / precision, device="cpu")
        paths[f"embedops_ort_{precision}"] = enc.encode
        try:
            ov_enc = OnnxEncoder(tmp_path / precision, device="cpu")
            ov_enc._run = _openvino_run(ov_enc)
            paths[f"embedops_openvino_{precision}"] = ov_enc.encode
        except ImportError:
            pass

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
               "ndcg@10": ndcg, "top10_same_as_st_torch_fp32": same_top10}
    benchmark.pedantic(lambda: paths["embedops_ort_int8"](texts[:256]), rounds=1, iterations=1)
    benchmark.extra_info.update(results)
    record("cpu_backends_scifact", results)
    assert same_top10["embedops_ort_fp32"] > 0.95
