"""Run an embedops ONNX export with OpenVINO's runtime on the CPU.

OpenVINO reads ``model.onnx`` directly (pooling and normalisation stay inside the graph), so the
export, its checksum and the encoder's tokenising, length buckets and batching are the same as with
ONNX Runtime; only the call that turns a batch of token ids into embeddings changes. On the 2-core
AVX2 machine of docs/BENCHMARKS.md it ran the fp32 graph faster than ONNX Runtime and than every
sentence-transformers backend measured beside it, at the same top 10; on the dynamically quantised
int8 graph it was slower than ONNX Runtime, which is why :class:`~embedops.encoding.OnnxEncoder`
picks it only for fp32 exports (``runtime="auto"``).

    >>> run = OpenVinoRun(Path("/store/artifacts/derived/<digest>/model.onnx"))   # doctest: +SKIP
    >>> run({"input_ids": ids, "attention_mask": mask}).shape                      # doctest: +SKIP
    (32, 384)

Inference precision is f32 unless asked: on CPUs with AVX512-BF16 or AMX OpenVINO would otherwise
compute in bf16 by default and the top 10 would drift from the fp32 reference. A ``bf16`` export
(:mod:`embedops.encoding.export`) asks for bf16 on purpose: :func:`inference_precision` refuses it on
a CPU without bf16 instructions (OpenVINO would quietly compute in f32 there), and the export's
parity gate decides whether the drift is acceptable.

No telemetry: ``import openvino`` starts OpenVINO's usage telemetry (``openvino_telemetry``, a
Google Analytics client that forks a process to send an event) unless the user opted out.
embedops imports it with ``openvino_telemetry`` masked (:func:`import_openvino`), so OpenVINO falls
back to its own no-op stub: nothing is sent, no process is forked beside LanceDB's runtime, and
air-gapped sites see no attempt. A process that imported ``openvino_telemetry`` itself keeps it.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from embedops.encoding.layout import OUTPUT_NAME

NAME = "OpenVINO:CPU"  # what the encoder reports (and an index records) as its provider
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def inference_precision(precision: str, cpu=None) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for an export of ``precision`` (``fp32`` or ``bf16``) on
    this CPU (``cpu``: a :class:`~embedops.cpu.CpuFeatures`, read from the machine when None).
    ``bf16`` needs AVX512-BF16 or AMX; elsewhere it raises :class:`~embedops.errors.UsageError`.

    >>> from embedops.cpu import parse_cpuinfo
    >>> inference_precision("bf16", parse_cpuinfo("flags : avx2 avx512f amx_bf16"))
    'bf16'
    """
    from embedops.cpu import cpu_features
    from embedops.errors import UsageError

    if precision not in _HINTS:
        raise UsageError(f"OpenVINO runs fp32 and bf16 exports here, not {precision!r}")
    if precision == "bf16":
        cpu = cpu or cpu_features()
        if not cpu.bf16:
            raise UsageError(f"bf16 inference needs a CPU with AVX512-BF16 or AMX, and this one has neither "
                             f"({cpu.describe()}): use --precision fp32 (or int8) here")
    return _HINTS[precision]


def import_openvino():
    """``openvino``, imported without its usage telemetry (see the module docstring)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # None: its import fails, OpenVINO uses its stub
    import openvino

    return openvino


def available() -> bool:
    """True when the ``openvino`` package imports."""
    try:
        import_openvino()
    except ImportError:
        return False
    return True


class _OpenVinoThread:
    """The one thread that calls into OpenVINO in this process: every compile, infer request, infer
    and release runs on it, in turn (see :class:`OpenVinoRun`). Started on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        os.register_at_fork(after_in_child=self._forget)  # a forked child has no such thread: it makes its own

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool = None

    def call(self, fn, *args):
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedops-openvino")
            pool = self._pool
        return pool.submit(fn, *args).result()  # the caller waits without the GIL

    def release(self, *objects) -> None:
        """Drop the last references to ``objects`` on the OpenVINO thread, without waiting."""
        try:
            if self._pool is not None:
                self._pool.submit(objects.__len__)  # the task holds them; they die with it, over there
        except RuntimeError:  # interpreter shutdown: the executor takes no more work
            pass


_THREAD = _OpenVinoThread()


class OpenVinoRun:
    """A compiled OpenVINO model, called like ONNX Runtime's ``session.run`` for one output.

    Every call into OpenVINO (compiling, creating the infer request, inferring, releasing them)
    runs on one thread of this process, one call at a time, whatever thread asks. OpenVINO called
    from several Python threads froze loaded ``embedops serve`` processes: with infer requests made
    per calling thread (a thread-local), 3 times in about 40 runs of the two-server load test, with
    every Python thread waiting inside OpenVINO (py-spy: one in ``create_infer_request``, three in
    ``infer``), after a promotion; with a fixed pool of requests, once more in CI, again at a
    promotion, a model compiled beside running inferences. The cause inside OpenVINO was not pinned
    down (its Python bindings have hung on request creation and destruction before). On one thread
    those calls can no longer overlap. What it costs: two models of one process (a server's old and
    new index, at a promotion) take turns, and a compile holds queries back while it runs (30 runs of
    the two-server load test, none froze: bench/serve-results/2026-12-03-openvino-one-thread-stress.txt);
    one model loses nothing, since in latency mode one inference already uses every core.

    Compiled for latency (OpenVINO's default on the CPU: one batch at a time on all cores). The
    throughput setting with two batches in flight bulk-encoded about 8% faster on 2 cores but took a
    single query from 12 to 20 ms (docs/BENCHMARKS.md); queries are what a server encodes."""

    def __init__(self, model_path: Path, *, threads: int | None = None, precision: str = "fp32"):
        config = {"INFERENCE_PRECISION_HINT": inference_precision(precision), "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled, self._request, self._output, self.input_names = _THREAD.call(_compile, str(model_path), config)

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return _THREAD.call(self._infer, feeds)

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(self._request.infer(feeds)[self._output], dtype=np.float32, copy=True)

    def __del__(self):
        if _THREAD is None:  # interpreter shutdown has cleared this module: nothing left to release onto
            return
        _THREAD.release(self.__dict__.pop("_request", None), self.__dict__.pop("_output", None),
                        self.__dict__.pop("_compiled", None))


def _compile(model_path: str, config: dict):
    """On the OpenVINO thread: the compiled model, its infer request, its output port, its input names."""
    compiled = import_openvino().Core().compile_model(model_path, "CPU", config)
    return (compiled, compiled.create_infer_request(), compiled.output(OUTPUT_NAME),
            [port.get_any_name() for port in compiled.inputs])
