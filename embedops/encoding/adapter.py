"""Query adapters: a small map from a new model's query embeddings into an old model's embedding
space, so the new model can search an index the old model built, before the corpus is re-embedded
(Drift-Adapter, EMNLP 2025: orthogonal Procrustes, affine and residual-MLP maps).

An adapter is fitted on documents embedded by both models (the old vectors are the index's own;
the new ones are encoded for a sample), by :mod:`embedops.trainer.adapters`. This module holds
what serving needs: the fitted weights, applying them (numpy, microseconds per query), saving and
loading them, and :class:`BridgedEncoder`, the encoder a bridge searches the old index with.

Kinds (each maps ``x`` (n, new_dim) to ``y`` (n, old_dim), then L2-normalises):

* ``procrustes``: ``y = x @ R`` with ``R`` orthogonal (a rotation; same dimensions only);
* ``affine``: ``y = x @ W + b`` (ridge regression);
* ``mlp``: ``y = x @ R + relu(x @ W1 + b1) @ W2 + b2`` (a residual MLP around the rotation).

>>> adapter = QueryAdapter.load(path)                       # doctest: +SKIP
>>> adapter.apply(new_model.encode(["statin side effects"])).shape   # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import UsageError

ADAPTER_KINDS = ("procrustes", "affine", "mlp")
WEIGHTS_FILE = "adapter.npz"
META_FILE = "adapter.json"
_WEIGHTS = {"procrustes": ("R",), "affine": ("W", "b"), "mlp": ("R", "W1", "b1", "W2", "b2")}


@dataclass(frozen=True, eq=False)
class QueryAdapter:
    """Fitted adapter weights of one ``kind`` (see the module docstring), float32."""

    kind: str
    weights: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)  # lineage and fit figures, saved beside the weights

    def __post_init__(self):
        if self.kind not in ADAPTER_KINDS:
            raise UsageError(f"unknown adapter kind {self.kind!r}; choose one of {', '.join(ADAPTER_KINDS)}")
        missing = [name for name in _WEIGHTS[self.kind] if name not in self.weights]
        if missing:
            raise UsageError(f"a {self.kind} adapter needs weights {', '.join(missing)}")
        first = self.weights[_WEIGHTS[self.kind][0]]
        if first.ndim != 2:
            raise UsageError(f"a {self.kind} adapter's {_WEIGHTS[self.kind][0]} must be a matrix")

    @property
    def in_dim(self) -> int:
        """The new model's dimension (what the adapter takes)."""
        return int(self.weights[_WEIGHTS[self.kind][0]].shape[0])

    @property
    def out_dim(self) -> int:
        """The old index's dimension (what the adapter gives)."""
        return int(self.weights[_WEIGHTS[self.kind][0]].shape[1])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` (n, in_dim) mapped into the old space, L2-normalised, float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise UsageError(f"this adapter takes {self.in_dim}-dimensional vectors, got shape {x.shape}")
        w = self.weights
        if self.kind == "procrustes":
            y = x @ w["R"]
        elif self.kind == "affine":
            y = x @ w["W"] + w["b"]
        else:
            y = x @ w["R"] + np.maximum(x @ w["W1"] + w["b1"], 0.0) @ w["W2"] + w["b2"]
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

    def save(self, folder: Path) -> Path:
        """Write ``adapter.npz`` and ``adapter.json`` into ``folder`` (created); returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / WEIGHTS_FILE, **{k: np.asarray(v, dtype=np.float32) for k, v in self.weights.items()})
        (folder / META_FILE).write_text(json.dumps({"kind": self.kind, "in_dim": self.in_dim,
                                                    "out_dim": self.out_dim} | {"meta": self.meta},
                                                   indent=2, sort_keys=True), "utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> QueryAdapter:
        """The adapter saved in ``folder`` (verify its checksums first: the registry does)."""
        folder = Path(folder)
        head = json.loads((folder / META_FILE).read_text("utf-8"))
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as npz:
            weights = {k: npz[k].astype(np.float32) for k in npz.files}
        return cls(head["kind"], weights, head.get("meta", {}))


class BridgedEncoder:
    """Embeds queries with a new model's encoder, then maps them through an adapter into an old
    index's space: what a bridge searches the old index with (an
    :class:`~embedops.index.IndexReader`'s encoder)."""

    def __init__(self, encoder, adapter: QueryAdapter):
        if encoder.dim != adapter.in_dim:
            raise UsageError(f"the adapter takes {adapter.in_dim}-dimensional vectors but the model gives "
                             f"{encoder.dim}: it was fitted for another model")
        self.encoder, self.adapter = encoder, adapter
        self.dim = adapter.out_dim

    @property
    def provider(self) -> str:
        return f"{self.encoder.provider} + {self.adapter.kind} adapter"

    @property
    def tokenizer(self):
        """The new model's tokenizer (what counts a request's tokens)."""
        return getattr(self.encoder, "tokenizer", None)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.adapter.apply(self.encoder.encode(texts))
