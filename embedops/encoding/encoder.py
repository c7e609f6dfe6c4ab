"""ONNX Runtime encoder for exported models (pooling and normalisation inside the graph).

What makes it fast, each measured on an H200 (../shared/gpu/NOTES.md) and on CPU (docs/BENCHMARKS.md):

* texts are sorted by token length and padded to a few length buckets, so batches waste little
  padding and the runtime sees only a handful of input shapes (each new shape costs it a re-plan).
  On the CPU the buckets are finer (every 8 tokens up to 64) and a batch never spans two of them:
  compute there grows with the padded width, and short queries padded to 32 tokens cost up to
  twice their length (measured, docs/BENCHMARKS.md); a GPU keeps coarse buckets and full batches;
* tokenisation of the next chunk (Hugging Face ``tokenizers``, which releases the GIL) runs in a
  background thread while the current chunk is in ONNX Runtime;
* the next batch is padded and assembled on the host while ONNX Runtime runs the current one (it
  releases the GIL);
* on CUDA, each batch's inputs are copied to the device once as OrtValues, the (batch, dim) output
  is bound on the device and copied back once, and the last batch of a chunk is padded to the full
  batch size so that the GPU sees a fixed set of shapes;
* :meth:`OnnxEncoder.encode_stream` works chunk by chunk, so peak memory does not grow with corpus size.

On the CPU, fp32 exports run on OpenVINO's runtime where ``openvino`` is installed (it reads the
same ``model.onnx``; measured faster than ONNX Runtime there, same top 10, docs/BENCHMARKS.md), and
int8/fp16 exports on ONNX Runtime; ``runtime="onnxruntime" | "openvino"`` overrides the choice, and
:attr:`OnnxEncoder.provider` says what ran (``OpenVINO:CPU`` or an ONNX Runtime provider).

Devices are chosen explicitly (``device="auto" | "cpu" | "cuda"``): ``auto`` means CUDA when
onnxruntime-gpu is installed *and* a GPU is visible, else CPU. Nothing falls back silently: when CUDA
was asked for (or chosen by ``auto``) and ONNX Runtime cannot start its CUDA provider, the encoder
raises :class:`~embedops.errors.DeviceError` naming the library that failed to load, unless
``allow_cpu_fallback=True``; then :attr:`OnnxEncoder.fallback` says why it runs on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np

from embedops.checksums import sha256_file, sha256_text
from embedops.encoding import openvino_runtime
from embedops.encoding.layout import META_FILE, OUTPUT_NAME
from embedops.errors import DeviceError, UsageError

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)  # on a GPU: few shapes, full batches
CPU_BUCKETS = (8, 16, 24, 32, 40, 48, 56, 64, 96, 128, 192, 256, 384, 512)  # on the CPU: little padding
DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "onnxruntime", "openvino")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROVIDER_LOG = re.compile(r"onnxruntime|Failed to load|cannot open shared object|CUDA|cuDNN", re.IGNORECASE)


def gpu_present() -> bool:
    """True when an NVIDIA GPU is visible to this process."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/proc/driver/nvidia/gpus").is_dir()


def choose_providers(requested: list[str] | None = None, device: str = "auto") -> list[str]:
    """The ONNX Runtime providers for ``device``: ``cuda`` needs onnxruntime-gpu and a visible GPU
    (else :class:`DeviceError`), ``cpu`` is CPU only, ``auto`` is CUDA (then CPU) when both are
    present, else CPU. An explicit ``requested`` list wins over ``device``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise UsageError(f"ONNX Runtime providers {missing} are not available here (have {available})")
        return requested
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise DeviceError(
                f"--device cuda: this onnxruntime {ort.__version__} has no CUDA provider (it has {', '.join(available)}). "
                "Install onnxruntime-gpu in its place (pip uninstall onnxruntime; pip install onnxruntime-gpu), "
                "or run with --device cpu")
        if not gpu_present():
            raise DeviceError("--device cuda: no NVIDIA GPU is visible to this process (no /dev/nvidia*; "
                              "check CUDA_VISIBLE_DEVICES and the driver), or run with --device cpu")
    if CUDA in available and gpu_present():
        return [CUDA, CPU]
    return [CPU]


def choose_runtime(runtime: str, precision: str, providers: list[str], *, explicit_providers: bool = False) -> str:
    """``onnxruntime`` or ``openvino`` for an export of ``precision`` running on ``providers``.

    ``auto`` takes OpenVINO's runtime for fp32 exports on the CPU where ``openvino`` is installed
    (measured fastest there, same top 10: docs/BENCHMARKS.md), ONNX Runtime otherwise: on CUDA,
    for int8 and fp16 graphs (ONNX Runtime's integer kernels are faster on int8), and when ONNX
    Runtime providers were named explicitly. ``openvino`` asked for by name needs the CPU and the
    package.

    A ``bf16`` export is OpenVINO's: ``auto`` takes it on the CPU (and the encoder refuses bf16 on a
    CPU without bf16 instructions); on CUDA it is an error (fp16 is the GPU's reduced precision).
    ``onnxruntime`` asked for by name runs a bf16 export's graph, which is the fp32 graph, in fp32:
    ``embedops serve`` does that to embed queries (see :class:`OnnxEncoder`'s ``compute_precision``)."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    on_cpu = providers == [CPU]
    if precision == "bf16" and runtime == "auto":
        if not on_cpu:
            raise UsageError("bf16 is a CPU precision (OpenVINO's runtime): on a GPU use --precision fp16, or "
                             "run on the CPU with --device cpu")
        if not openvino_runtime.available():
            raise UsageError("bf16 inference runs on OpenVINO's runtime: pip install 'openvino>=2026.4'")
        return "openvino"
    if runtime == "openvino":
        if not on_cpu:
            raise UsageError("the OpenVINO runtime runs on the CPU only: use --device cpu with --runtime openvino")
        if not openvino_runtime.available():
            raise UsageError("--runtime openvino needs the openvino package: pip install 'openvino>=2026.4'")
        return "openvino"
    if runtime == "auto" and on_cpu and precision == "fp32" and not explicit_providers and openvino_runtime.available():
        return "openvino"
    return "onnxruntime"


@contextlib.contextmanager
def _native_stderr(lines: list[str]):
    """Collect what ONNX Runtime (its native logger and ``preload_dlls``) writes to file descriptor 2
    meanwhile into ``lines``; anything else written there in that time is passed on afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            for line in _ANSI.sub("", text).splitlines():
                if _PROVIDER_LOG.search(line):
                    lines.append(line.strip())
                elif line.strip():
                    print(line, file=sys.stderr)


def _cuda_failure(log: list[str]) -> str:
    """The useful part of ONNX Runtime's log when its CUDA provider did not start."""
    libs = sorted(set(re.findall(r"(lib[\w.+-]+\.so(?:\.\d+)*): cannot open shared object file", "\n".join(log))))
    errors = [line for line in log if "[E:onnxruntime" in line] or log[-1:]
    detail = re.sub(r"^.*?\[[EWIV]:onnxruntime[^\]]*\]\s*", "", errors[-1]) if errors else "nothing"
    detail = re.sub(r"^.*?\bFAIL : ", "", detail)
    if libs:
        return (f"the CUDA provider could not load {', '.join(libs)} (install the matching CUDA/cuDNN "
                f"libraries, e.g. pip install onnxruntime-gpu[cuda,cudnn], or put them on LD_LIBRARY_PATH). "
                f"ONNX Runtime said: {detail}")
    return f"the CUDA provider did not start. ONNX Runtime said: {detail}"


class _Tokens(NamedTuple):
    """A chunk's token ids (and type ids, unless all zero), one list per text."""

    ids: list[list[int]]
    type_ids: list[list[int]] | None


def bucket_length(n: int, buckets: tuple[int, ...], max_length: int) -> int:
    for b in buckets:
        if n <= b:
            return min(b, max_length)
    return max_length


class OnnxEncoder:
    """Encode texts with an embedops ONNX export directory (``model.onnx`` + tokenizer + meta).

    >>> enc = OnnxEncoder("/store/artifacts/derived/<digest>")          # doctest: +SKIP
    >>> enc.encode(["how do I rotate the TLS cert?"]).shape              # doctest: +SKIP
    (1, 384)

    :attr:`provider` says what runs the graph and :attr:`compute_precision` in what precision (a bf16
    export computes in bf16 on OpenVINO's runtime only; ONNX Runtime runs its fp32 graph).
    """

    def __init__(self, path: Path | str, *, providers: list[str] | None = None, batch_size: int | None = None,
                 max_length: int | None = None, buckets: tuple[int, ...] | None = None,
                 threads: int | None = None, device: str = "auto", allow_cpu_fallback: bool = False,
                 runtime: str = "auto"):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.meta = json.loads((self.path / META_FILE).read_text("utf-8"))
        self.dim = int(self.meta["dim"])
        self.max_length = int(max_length or self.meta["max_seq_length"])
        self.do_lower_case = bool(self.meta.get("do_lower_case"))
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.providers = choose_providers(providers, device)
        self.fallback: str | None = None  # why a CUDA run fell back to the CPU (allow_cpu_fallback only)
        precision = self.meta.get("precision", "fp32")
        self.runtime = choose_runtime(runtime, precision, self.providers, explicit_providers=bool(providers))
        self._openvino: openvino_runtime.OpenVinoRun | None = None
        self.session = None
        # What the graph computes in: the export's precision, except that a bf16 export computes in bf16
        # only on OpenVINO's runtime (ONNX Runtime runs its graph, the fp32 one, as it is).
        self.compute_precision = "fp32" if precision == "bf16" and self.runtime != "openvino" else precision
        if self.runtime == "openvino":
            self._openvino = openvino_runtime.OpenVinoRun(
                self.path / "model.onnx", threads=threads, precision="bf16" if precision == "bf16" else "fp32")
            self.input_names = self._openvino.input_names
        else:
            self.session = self._onnxruntime_session(threads, allow_cpu_fallback)
            self.input_names = [i.name for i in self.session.get_inputs()]
        self.on_cuda = self.provider == CUDA
        buckets = buckets or (DEFAULT_BUCKETS if self.on_cuda else CPU_BUCKETS)
        self.buckets = tuple(b for b in buckets if b < self.max_length) + (self.max_length,)
        self.device_id = int(self.session.get_provider_options().get(CUDA, {}).get("device_id", 0)) if self.on_cuda else 0
        # Measured: 32 is fastest on a 2-core CPU (docs/BENCHMARKS.md); GPUs want big batches.
        self.batch_size = batch_size or (256 if self.on_cuda else 32)
        self.chunk_size = 16 * self.batch_size  # texts tokenised ahead while the previous chunk runs
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self._encode_batch = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)  # no offsets
        # A single sequence gets token type 0 throughout with BERT-style templates: then skip reading them.
        self._zero_type_ids = not any(self.tokenizer.encode("a b").type_ids)
        self._tokenizer_digest: str | None = None

    def _onnxruntime_session(self, threads: int | None, allow_cpu_fallback: bool):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if CUDA not in self.providers:
            opts.log_severity_level = 3
            return ort.InferenceSession(str(self.path / "model.onnx"), sess_options=opts, providers=self.providers)
        log: list[str] = []
        opts.log_severity_level = 2  # keep the provider's load warnings: they name what is missing
        with _native_stderr(log):
            if hasattr(ort, "preload_dlls"):
                with contextlib.suppress(Exception), contextlib.redirect_stdout(sys.stderr):
                    ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels, where installed
            session = ort.InferenceSession(str(self.path / "model.onnx"), sess_options=opts, providers=self.providers)
        if session.get_providers()[0] != CUDA:
            reason = _cuda_failure(log)
            if not allow_cpu_fallback:
                raise DeviceError(f"{reason}. Fix that, run with --device cpu, or pass --allow-cpu-fallback.")
            self.fallback = reason
        return session

    @property
    def provider(self) -> str:
        """What runs the graph: an ONNX Runtime provider name, or ``OpenVINO:CPU``."""
        return openvino_runtime.NAME if self._openvino is not None else self.session.get_providers()[0]

    # -- internals ----------------------------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> _Tokens:
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        encs = self._encode_batch(texts)  # Rust, on every core, without the GIL
        ids = [e.ids for e in encs]
        return _Tokens(ids, None if self._zero_type_ids else [e.type_ids for e in encs])

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if self._openvino is not None:
            return self._openvino(feeds)
        if not self.on_cuda:
            return self.session.run([OUTPUT_NAME], feeds)[0]
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, arr in feeds.items():  # one host-to-device copy per input and batch
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", self.device_id))
        binding.bind_output(OUTPUT_NAME, "cuda", self.device_id)  # stays on the GPU until copied once
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _feeds(self, toks: _Tokens, idx: list[int]) -> dict[str, np.ndarray]:
        """One batch, padded to its length bucket (and, on CUDA, to the full batch size)."""
        lengths = np.fromiter((len(toks.ids[i]) for i in idx), dtype=np.int64, count=len(idx))
        width = bucket_length(int(lengths.max()), self.buckets, self.max_length)
        rows = self.batch_size if self.on_cuda else len(idx)
        valid = np.zeros((rows, width), dtype=bool)
        valid[: len(idx)] = np.arange(width)[None, :] < lengths[:, None]
        total = int(lengths.sum())
        ids = np.full((rows, width), self.pad_id, dtype=np.int64)
        ids[valid] = np.fromiter(chain.from_iterable(toks.ids[i] for i in idx), dtype=np.int64, count=total)
        feeds = {"input_ids": ids, "attention_mask": valid.astype(np.int64)}
        if "token_type_ids" in self.input_names:
            types = np.zeros((rows, width), dtype=np.int64)
            if toks.type_ids is not None:
                types[valid] = np.fromiter(chain.from_iterable(toks.type_ids[i] for i in idx), dtype=np.int64,
                                           count=total)
            feeds["token_type_ids"] = types
        return {k: v for k, v in feeds.items() if k in self.input_names}

    def _batches(self, toks: _Tokens) -> list[list[int]]:
        """Text positions in batches of at most ``batch_size``, shortest first; on the CPU a batch
        holds texts of one length bucket only (on a GPU full batches matter more than padding)."""
        order = sorted(range(len(toks.ids)), key=lambda i: len(toks.ids[i]))
        if self.on_cuda:
            return [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        batches: list[list[int]] = []
        width = None
        for i in order:
            w = bucket_length(len(toks.ids[i]), self.buckets, self.max_length)
            if w != width or len(batches[-1]) == self.batch_size:
                batches.append([])
                width = w
            batches[-1].append(i)
        return batches

    def _encode_tokenized(self, toks: _Tokens) -> np.ndarray:
        n = len(toks.ids)
        out = np.empty((n, self.dim), dtype=np.float32)
        batches = self._batches(toks)
        if len(batches) == 1:
            out[batches[0]] = self._run(self._feeds(toks, batches[0]))[: len(batches[0])]
            return out
        # the next batch is assembled on the host while ONNX Runtime (which releases the GIL) runs this one
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedops-batch") as pool:
            pending = pool.submit(self._feeds, toks, batches[0])
            for k, idx in enumerate(batches):
                feeds = pending.result()
                if k + 1 < len(batches):
                    pending = pool.submit(self._feeds, toks, batches[k + 1])
                out[idx] = self._run(feeds)[: len(idx)]
        return out

    # -- public -------------------------------------------------------------------------------------

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings (len(texts), dim), float32, L2-normalised, in the order of ``texts``. Long lists
        go through :meth:`encode_stream` in chunks, so tokenising overlaps with inference."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= self.chunk_size:
            return self._encode_tokenized(self._tokenize(texts))
        chunks = (texts[i : i + self.chunk_size] for i in range(0, len(texts), self.chunk_size))
        return np.vstack(list(self.encode_stream(chunks)))

    def encode_stream(self, chunks: Iterable, tokenize: Callable[[object], list[list[int]]] | None = None
                      ) -> Iterator[np.ndarray]:
        """Encode chunk after chunk, tokenising the next chunk while the current one runs.

        A chunk is a list of texts, or whatever ``tokenize`` turns into their token ids (one list per
        text, as :meth:`tokenize` returns them): a build passes one that reuses the ids stored for
        this tokenizer (:mod:`embedops.reembed.tokens`). It runs in the background thread too."""
        if tokenize is None:
            step = lambda chunk: self._tokenize(list(chunk))  # noqa: E731
        else:
            self._check_token_ids_reusable()
            step = lambda chunk: _Tokens(tokenize(chunk), None)  # noqa: E731
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedops-tokenize") as pool:
            it = iter(chunks)
            first = next(it, None)
            if first is None:
                return
            pending = pool.submit(step, first)
            for chunk in it:
                toks = pending.result()
                pending = pool.submit(step, chunk)
                yield self._encode_tokenized(toks)
            yield self._encode_tokenized(pending.result())

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """The token ids this encoder feeds the model for ``texts`` (lower-cased where the model
        wants it, truncated to :attr:`max_length`), one list per text; see :attr:`tokenizer_digest`."""
        self._check_token_ids_reusable()
        return self._tokenize(list(texts)).ids

    @property
    def token_ids_reusable(self) -> bool:
        """True when token ids alone feed the model (token type ids are all zero for one text, as in
        BERT-style templates), so ids tokenised once can be fed again (:meth:`encode_stream`)."""
        return self._zero_type_ids

    @property
    def tokenizer_digest(self) -> str:
        """sha256 of what decides the token ids: ``tokenizer.json``, lower-casing and the maximum
        length. Every fine-tuned version of a base model shares its base's digest, since fine-tuning
        changes the weights and not the tokenizer."""
        if self._tokenizer_digest is None:
            self._tokenizer_digest = sha256_text(f"{sha256_file(self.path / 'tokenizer.json')}\0"
                                                 f"lower={self.do_lower_case}\0max_length={self.max_length}")
        return self._tokenizer_digest

    def _check_token_ids_reusable(self) -> None:
        if not self._zero_type_ids:
            raise UsageError(f"{self.path}: this tokenizer gives one text non-zero token type ids, so token ids "
                             "alone cannot be fed again; encode the texts")
