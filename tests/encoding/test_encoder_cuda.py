"""The CUDA path of the ONNX encoder, on a real GPU (``pytest -m gpu``; bench/gpu_check.sh runs these).

They skip with a reason on a machine without an NVIDIA GPU or without onnxruntime-gpu. Exports come
from ``EMBEDOPS_PREBUILT_EXPORTS`` (a folder with ``fp32/`` and ``fp16/``, as bench/gpu_bundle.py
packs them for a GPU image without optimum) or are made here from the tiny test model.
"""

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from embedops.encoding import OnnxEncoder, export_onnx
from embedops.encoding.encoder import gpu_present

CUDA = "CUDAExecutionProvider"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_present() or CUDA not in ort.get_available_providers(),
                       reason="needs an NVIDIA GPU and onnxruntime-gpu (this machine has no GPU or no CUDA provider)"),
]

TEXTS = ["short", "tls", "a medium length sentence about kafka consumer lag on the orders topic",
         "x " * 300, "redis maxmemory policy allkeys-lru"] + [f"document {i} " * (i % 9 + 1) for i in range(40)]


@pytest.fixture(scope="module")
def exports(request, tmp_path_factory) -> dict[str, Path]:
    prebuilt = os.environ.get("EMBEDOPS_PREBUILT_EXPORTS")
    if prebuilt:
        return {p: Path(prebuilt) / p for p in ("fp32", "fp16")}
    out = tmp_path_factory.mktemp("cuda-exports")
    for precision in ("fp32", "fp16"):
        export_onnx(request.getfixturevalue("tiny_model_dir"), out / precision, precision)
    return {p: out / p for p in ("fp32", "fp16")}


def test_device_cuda_runs_on_the_gpu_with_no_fallback(exports):
    enc = OnnxEncoder(exports["fp32"], device="cuda")
    assert enc.provider == CUDA and enc.on_cuda and enc.fallback is None
    assert OnnxEncoder(exports["fp32"]).provider == CUDA  # auto picks the GPU where there is one


def test_cuda_fp32_matches_the_cpu(exports):
    gpu = OnnxEncoder(exports["fp32"], device="cuda", batch_size=8).encode(TEXTS)
    cpu = OnnxEncoder(exports["fp32"], device="cpu").encode(TEXTS)
    assert gpu.shape == cpu.shape
    assert float(np.sum(gpu * cpu, axis=1).min()) > 0.9999


def test_fp16_on_cuda_stays_within_parity_of_fp32(exports):
    fp16 = OnnxEncoder(exports["fp16"], device="cuda").encode(TEXTS)
    fp32 = OnnxEncoder(exports["fp32"], device="cpu").encode(TEXTS)
    assert float(np.sum(fp16 * fp32, axis=1).min()) >= 0.99


def test_padded_last_batch_and_order_are_invisible_to_the_caller(exports):
    enc = OnnxEncoder(exports["fp32"], device="cuda", batch_size=16)
    together = enc.encode(TEXTS)  # 45 texts: two full batches and a padded one, sorted by length
    alone = np.vstack([enc.encode([t]) for t in TEXTS[:7]])
    assert together.shape == (len(TEXTS), enc.dim)
    assert np.allclose(together[:7], alone, atol=1e-4)
    streamed = np.vstack(list(enc.encode_stream([TEXTS[:20], TEXTS[20:]])))
    assert np.allclose(streamed, together, atol=1e-5)
