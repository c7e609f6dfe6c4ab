import numpy as np
import pytest

from embedops.encoding import OnnxEncoder, export_onnx
from embedops.encoding.encoder import bucket_length, choose_providers


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
    assert encoder.provider == "CPUExecutionProvider"
