import numpy as np
import onnxruntime as ort
import pytest

from embedops.encoding import OnnxEncoder, export_onnx
from embedops.encoding.encoder import bucket_length, choose_providers, gpu_present
from embedops.errors import DeviceError, UsageError


@pytest.fixture(scope="module")
def encoder(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    export_onnx(tiny_model_dir, out, "fp32")
    return OnnxEncoder(out, batch_size=4)


def test_bucketing_keeps_few_shapes():
    buckets = (16, 32, 64, 128)
    assert [bucket_length(n, buckets, 128) for n in (1, 16, 17, 33, 100, 128)] == [16, 16, 32, 64, 128, 128]


def test_order_is_preserved_and_padding_does_not_change_embeddings(encoder):
    texts = ["short", "a medium length sentence about kafka lag", "x " * 200, "tls", "redis memory policy"]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert together.shape == (5, encoder.dim)
    assert np.allclose(together, alone, atol=1e-5)


def test_stream_equals_batch(encoder):
    texts = [f"document number {i} " * (i % 7 + 1) for i in range(23)]
    streamed = np.vstack(list(encoder.encode_stream([texts[:10], texts[10:20], texts[20:]])))
    assert np.allclose(streamed, encoder.encode(texts), atol=1e-6)
    assert list(encoder.encode_stream([])) == []


def test_cpu_is_chosen_without_a_gpu(monkeypatch, encoder):
    from embedops.encoding import encoder as mod

    monkeypatch.setattr(mod, "gpu_present", lambda: False)
    assert choose_providers() == ["CPUExecutionProvider"]
    assert OnnxEncoder(encoder.path).provider == "CPUExecutionProvider"
    assert OnnxEncoder(encoder.path, device="cpu").provider == "CPUExecutionProvider"


def test_asking_for_cuda_without_a_gpu_is_an_error_not_a_fallback(monkeypatch, encoder):
    from embedops.encoding import encoder as mod

    monkeypatch.setattr(mod, "gpu_present", lambda: False)
    with pytest.raises(DeviceError, match="--device cpu"):
        OnnxEncoder(encoder.path, device="cuda")
    with pytest.raises(UsageError, match="choose one of auto, cpu, cuda"):
        OnnxEncoder(encoder.path, device="tpu")


@pytest.mark.skipif(gpu_present() or "CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu on a machine without a GPU, where its CUDA provider cannot start")
def test_a_cuda_provider_that_cannot_start_names_the_cause_unless_fallback_is_allowed(encoder):
    cuda_first = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(DeviceError) as err:
        OnnxEncoder(encoder.path, providers=cuda_first)
    message = str(err.value)
    assert "CUDA provider" in message and "--allow-cpu-fallback" in message
    assert ".so" in message  # the library that failed to load, or ONNX Runtime's own words
    fell_back = OnnxEncoder(encoder.path, providers=cuda_first, allow_cpu_fallback=True)
    assert fell_back.provider == "CPUExecutionProvider" and "CUDA provider" in fell_back.fallback
    assert np.allclose(fell_back.encode(["tls"]), encoder.encode(["tls"]), atol=1e-6)
