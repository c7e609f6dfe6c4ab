"""Parity of an ONNX export with the torch model it came from: the cosine between
sentence-transformers (torch, fp32) and the export's embeddings on sample texts.

>>> parity = measure_parity(model_dir, OnnxEncoder(onnx_dir), "fp32")     # doctest: +SKIP
>>> parity.ok                                                            # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import io

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedops.encoding.encoder import OnnxEncoder

PARITY_THRESHOLDS = {"fp32": 0.999, "fp16": 0.99, "int8": 0.99, "bf16": 0.99}
PARITY_TEXTS = [
    "How do I roll back a bad deployment?",
    "what's the p95 latency budget for search",
    "Kafka consumer lag keeps growing on the orders topic after the broker upgrade.",
    "Certificates are renewed automatically thirty days before they expire.",
    "Mitochondrial DNA mutations accumulate with age in post-mitotic tissue.",
    "The quick brown fox jumps over the lazy dog.",
    "ERR_CONN_RESET 502 upstream timeout nginx",
    "a",
    "Zinc supplementation reduces the duration of the common cold in children, according to a "
    "meta-analysis of randomised controlled trials conducted between 1984 and 2011 in several countries.",
    " ".join(["Long documents are truncated to the model's maximum sequence length."] * 40),
    "Résumé naïve café — unicode and accents survive tokenisation.",
    "SELECT id, vector FROM index WHERE status = 'ready' LIMIT 10;",
]



@dataclass(frozen=True)
class Parity:
    mean_cosine: float
    min_cosine: float
    threshold: float
    texts: int

    @property
    def ok(self) -> bool:
        return self.min_cosine >= self.threshold

    def to_dict(self) -> dict:
        return {"mean_cosine": self.mean_cosine, "min_cosine": self.min_cosine, "threshold": self.threshold,
                "texts": self.texts}


def measure_parity(model_dir: Path, encoder: OnnxEncoder, precision: str, texts: list[str] | None = None) -> Parity:
    """Cosine between sentence-transformers (torch fp32) on ``model_dir`` and ``encoder`` (an open
    ONNX export) on ``texts`` (default: :data:`PARITY_TEXTS`)."""
    from sentence_transformers import SentenceTransformer

    texts = texts or PARITY_TEXTS
    with contextlib.redirect_stderr(io.StringIO()):  # transformers' "Loading weights" bar is not our output
        st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True,
                                 model_kwargs={"use_safetensors": True})
    ref = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    got = encoder.encode(texts)
    cos = (ref * got).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
    return Parity(float(cos.mean()), float(cos.min()), PARITY_THRESHOLDS[precision], len(texts))
