"""ONNX Runtime encoder for exported models (pooling and normalisation inside the graph).

What makes it fast, each measured on an H200 (../shared/gpu/NOTES.md) and on CPU (docs/BENCHMARKS.md):

* texts are sorted by token length and padded to a few length buckets, so batches waste little
  padding and ONNX Runtime sees only a handful of input shapes (each new shape costs it a re-plan);
* tokenisation of the next chunk (Hugging Face ``tokenizers``, which releases the GIL) runs in a
  background thread while the current chunk is in ONNX Runtime;
* on CUDA, inputs and the (batch, dim) output go through IO binding;
* :meth:`OnnxEncoder.encode_stream` works chunk by chunk, so peak memory does not grow with corpus size.

Providers are chosen explicitly: CUDA when onnxruntime-gpu is installed *and* a GPU is present,
otherwise CPU; provider-failure noise from ONNX Runtime is silenced.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from embedops.encoding.layout import META_FILE, OUTPUT_NAME
from embedops.errors import UsageError

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)


def gpu_present() -> bool:
    """True when an NVIDIA GPU is visible to this process."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/proc/driver/nvidia/gpus").is_dir()


def choose_providers(requested: list[str] | None = None) -> list[str]:
    """CUDA (then CPU) when onnxruntime-gpu and a GPU are both present; else CPU only."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise UsageError(f"ONNX Runtime providers {missing} are not available here (have {available})")
        return requested
    if "CUDAExecutionProvider" in available and gpu_present():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


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
    """

    def __init__(self, path: Path | str, *, providers: list[str] | None = None, batch_size: int | None = None,
                 max_length: int | None = None, buckets: tuple[int, ...] = DEFAULT_BUCKETS,
                 threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.meta = json.loads((self.path / META_FILE).read_text("utf-8"))
        self.dim = int(self.meta["dim"])
        self.max_length = int(max_length or self.meta["max_seq_length"])
        self.buckets = tuple(b for b in buckets if b < self.max_length) + (self.max_length,)
        self.do_lower_case = bool(self.meta.get("do_lower_case"))
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.providers = choose_providers(providers)
        ort.set_default_logger_severity(3)  # errors only: no provider-fallback noise
        if "CUDAExecutionProvider" in self.providers and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception:  # pragma: no cover - depends on the CUDA install
                pass
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path / "model.onnx"), sess_options=opts, providers=self.providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"
        # Measured: 32 is fastest on a 2-core CPU (docs/BENCHMARKS.md); GPUs want big batches.
        self.batch_size = batch_size or (256 if self.on_cuda else 32)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    # -- internals ----------------------------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> list[tuple[list[int], list[int]]]:
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        encs = self.tokenizer.encode_batch(texts)
        return [(e.ids, e.type_ids) for e in encs]

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if not self.on_cuda:
            return self.session.run([OUTPUT_NAME], feeds)[0]
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, arr)
        binding.bind_output(OUTPUT_NAME, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _encode_tokenized(self, toks: list[tuple[list[int], list[int]]]) -> np.ndarray:
        out = np.empty((len(toks), self.dim), dtype=np.float32)
        order = sorted(range(len(toks)), key=lambda i: len(toks[i][0]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = bucket_length(max(len(toks[i][0]) for i in idx), self.buckets, self.max_length)
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(toks[i][0])
                ids[row, :n] = toks[i][0]
                mask[row, :n] = 1
                types[row, :n] = toks[i][1]
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            out[idx] = self._run({k: v for k, v in feeds.items() if k in self.input_names})
        return out

    # -- public -------------------------------------------------------------------------------------

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings (len(texts), dim), float32, L2-normalised, in the order of ``texts``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode_tokenized(self._tokenize(list(texts)))

    def encode_stream(self, chunks: Iterable[list[str]]) -> Iterator[np.ndarray]:
        """Encode chunk after chunk, tokenising the next chunk while the current one runs."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedops-tokenize") as pool:
            it = iter(chunks)
            first = next(it, None)
            if first is None:
                return
            pending = pool.submit(self._tokenize, list(first))
            for chunk in it:
                toks = pending.result()
                pending = pool.submit(self._tokenize, list(chunk))
                yield self._encode_tokenized(toks)
            yield self._encode_tokenized(pending.result())
