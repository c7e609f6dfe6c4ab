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


def test_on_the_cpu_a_short_query_is_not_padded_to_the_longest_text_of_its_batch(encoder, monkeypatch):
    widths = []
    run = encoder._run
    monkeypatch.setattr(encoder, "_run", lambda feeds: widths.append(feeds["input_ids"].shape) or run(feeds))
    texts = ["tls", "redis", "x " * 60, "kafka lag", "y " * 61]
    vectors = encoder.encode(texts)
    # the three short texts share one narrow batch; the two long ones another, padded to their bucket
    assert sorted(widths) == [(2, 64), (3, 8)]
    assert np.allclose(vectors, np.vstack([encoder.encode([t]) for t in texts]), atol=1e-5)


def test_stream_equals_batch(encoder):
    texts = [f"document number {i} " * (i % 7 + 1) for i in range(23)]
    streamed = np.vstack(list(encoder.encode_stream([texts[:10], texts[10:20], texts[20:]])))
    assert np.allclose(streamed, encoder.encode(texts), atol=1e-6)
    assert list(encoder.encode_stream([])) == []


def test_cpu_is_chosen_without_a_gpu(monkeypatch, encoder):
    from embedops.encoding import encoder as mod

    monkeypatch.setattr(mod, "gpu_present", lambda: False)
    assert choose_providers() == ["CPUExecutionProvider"]
    for enc in (OnnxEncoder(encoder.path), OnnxEncoder(encoder.path, device="cpu")):
        assert enc.providers == ["CPUExecutionProvider"] and not enc.on_cuda


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


# -- the CPU runtime: OpenVINO's for fp32 exports where it is installed, ONNX Runtime otherwise --------

def test_openvino_runs_fp32_exports_on_the_cpu_by_default_with_the_same_embeddings(monkeypatch, encoder):
    from embedops.encoding import encoder as mod

    monkeypatch.setattr(mod, "gpu_present", lambda: False)
    texts = ["short", "a medium length sentence about kafka lag", "x " * 200, "tls"]
    default = OnnxEncoder(encoder.path, device="cpu")
    reference = OnnxEncoder(encoder.path, device="cpu", runtime="onnxruntime")
    assert (default.runtime, default.provider) == ("openvino", "OpenVINO:CPU")
    assert (reference.runtime, reference.provider) == ("onnxruntime", "CPUExecutionProvider")
    cosine = np.sum(default.encode(texts) * reference.encode(texts), axis=1)
    assert cosine.min() > 0.9999


def test_int8_exports_and_named_onnx_runtime_providers_stay_on_onnx_runtime(tiny_model_dir, tmp_path, encoder):
    export_onnx(tiny_model_dir, tmp_path / "int8", "int8")
    assert OnnxEncoder(tmp_path / "int8", device="cpu").runtime == "onnxruntime"
    assert OnnxEncoder(encoder.path, providers=["CPUExecutionProvider"]).runtime == "onnxruntime"
    forced = OnnxEncoder(tmp_path / "int8", device="cpu", runtime="openvino")
    assert forced.provider == "OpenVINO:CPU" and forced.encode(["tls"]).shape == (1, forced.dim)


def test_openvino_encoders_called_from_several_threads_run_on_one_openvino_thread(encoder, monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from embedops.encoding import openvino_runtime

    threads = set()
    compile_model = openvino_runtime._compile
    monkeypatch.setattr(openvino_runtime, "_compile",
                        lambda *a: threads.add(threading.current_thread().name) or compile_model(*a))
    infer = openvino_runtime.OpenVinoRun._infer
    monkeypatch.setattr(openvino_runtime.OpenVinoRun, "_infer",
                        lambda self, feeds: threads.add(threading.current_thread().name) or infer(self, feeds))
    encs = [OnnxEncoder(encoder.path, device="cpu", runtime="openvino") for _ in range(2)]  # old and new model
    texts = [f"query {i} about " + "word " * (i % 9) for i in range(12)]
    expected = encs[0].encode(texts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda i: encs[i % 2].encode([texts[i]])[0], range(len(texts))))
        pool.submit(OnnxEncoder, encoder.path, device="cpu", runtime="openvino").result()  # a compile beside them
    assert np.allclose(np.vstack(got), expected, atol=1e-5)
    assert len(threads) == 1 and threads.pop().startswith("embedops-openvino")


def test_runtime_choice_is_checked_up_front(monkeypatch, encoder):
    from embedops.encoding import encoder as mod

    with pytest.raises(UsageError, match="choose one of auto, onnxruntime, openvino"):
        OnnxEncoder(encoder.path, runtime="tensorrt")
    with pytest.raises(UsageError, match="CPU only"):
        mod.choose_runtime("openvino", "fp32", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(mod.openvino_runtime, "available", lambda: False)
    assert mod.choose_runtime("auto", "fp32", ["CPUExecutionProvider"]) == "onnxruntime"
    with pytest.raises(UsageError, match="pip install"):
        mod.choose_runtime("openvino", "fp32", ["CPUExecutionProvider"])


# -- bf16: OpenVINO's bf16 inference on CPUs that have bf16 instructions, refused elsewhere ------------

def test_bf16_exports_run_in_bf16_on_openvino_close_to_fp32_or_are_refused_by_name(tiny_model_dir, tmp_path,
                                                                                    monkeypatch, encoder):
    from embedops.cpu import cpu_features
    from embedops.encoding import encoder as mod

    monkeypatch.setattr(mod, "gpu_present", lambda: False)
    meta = export_onnx(tiny_model_dir, tmp_path / "bf16", "bf16")
    assert meta["precision"] == "bf16" and not meta["fused"]
    texts = ["short", "a medium length sentence about kafka lag", "x " * 200, "tls"]
    if not cpu_features().bf16:  # this machine's CPU (CI's may have only AVX2): refused, naming the fix
        with pytest.raises(UsageError, match="AVX512-BF16 or AMX.*--precision fp32"):
            OnnxEncoder(tmp_path / "bf16", device="cpu")
        return
    bf16 = OnnxEncoder(tmp_path / "bf16", device="cpu")
    assert (bf16.runtime, bf16.provider, bf16.compute_precision) == ("openvino", "OpenVINO:CPU", "bf16")
    got, ref = bf16.encode(texts), encoder.encode(texts)
    cosine = np.sum(got * ref, axis=1)
    assert cosine.min() > 0.99  # the parity threshold of reduced precisions
    assert not np.allclose(got, ref, atol=1e-6), "bf16 computed exactly what fp32 does: the hint was not applied"


def test_a_bf16_export_on_onnx_runtime_computes_in_fp32_and_bf16_is_no_gpu_precision(tiny_model_dir, tmp_path,
                                                                                     encoder):
    from embedops.cpu import parse_cpuinfo
    from embedops.encoding import encoder as mod
    from embedops.encoding.openvino_runtime import inference_precision

    export_onnx(tiny_model_dir, tmp_path / "bf16", "bf16")
    served = OnnxEncoder(tmp_path / "bf16", device="cpu", runtime="onnxruntime")  # as `embedops serve` opens it
    assert (served.runtime, served.compute_precision) == ("onnxruntime", "fp32")
    assert np.allclose(served.encode(["tls"]), encoder.encode(["tls"]), atol=1e-5)
    with pytest.raises(UsageError, match="fp16"):
        mod.choose_runtime("auto", "bf16", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    avx2_only = parse_cpuinfo("model name : Some EPYC\nflags : avx2 fma")
    with pytest.raises(UsageError, match=r"Some EPYC \(AVX2\)"):
        inference_precision("bf16", avx2_only)
    assert inference_precision("fp32", avx2_only) == "f32"
    assert inference_precision("bf16", parse_cpuinfo("flags : avx2 avx512f avx512_bf16")) == "bf16"
