"""Index footprints (issue #36): the ways an index can keep its vectors smaller than float32, and
the exact search each one gives, computed from an index's stored float32 vectors.

Each :class:`Footprint` is one way to store and search: the vector kind (float32, int8 scalar,
binary sign bits), the dimensions kept (Matryoshka truncation: the first N, renormalised) and, for
binary, the rescoring stage (the best ``rescore x k`` by hamming distance re-ranked with the float32
query against int8 or float32 vectors kept alongside). The codes are exactly those an index of that
kind stores (:mod:`embedops.index.codecs`: int8 with per-dimension ranges calibrated on the
documents, decoded to their bins' centres; sign bits from sentence-transformers'
``quantize_embeddings``), following sentence-transformers' "Embedding Quantization" guide and the
binary + int8 rescoring recipe of Shakir, Aarsen and Lee (2024, "Binary and Scalar Embedding
Quantization for Significantly Faster & Cheaper Retrieval"). Footprints are plug-ins:
:func:`register_footprint`.

>>> fp = footprint("binary+int8")
>>> fp.searched_bytes(384), fp.kept_bytes(384)
(48.0, 432.0)
>>> ranked = fp.prepare(doc_vectors).search(query_vectors, 10)             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embedops.errors import UsageError
from embedops.index.ann import RESCORE_DEPTH as RESCORE, top_k
from embedops.index.codecs import Int8Scale, sign_bits, unit

DEFAULT_FOOTPRINTS = ("float32", "int8", "binary", "binary+int8", "binary+float32")
_QUERY_CHUNK = 64
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class Footprint:
    """One way to keep an index's vectors: ``kind`` float32, int8 or binary; ``dims`` the leading
    dimensions kept (None: all); for binary, ``rescore_with`` (None, "int8" or "float32")."""

    kind: str
    dims: int | None = None
    rescore_with: str | None = None

    @property
    def name(self) -> str:
        base = self.kind + (f"+{self.rescore_with}" if self.rescore_with else "")
        return base + (f"@{self.dims}" if self.dims else "")

    def _dim(self, dim: int) -> int:
        return min(self.dims, dim) if self.dims else dim

    def searched_bytes(self, dim: int) -> float:
        """Bytes per document the search reads (what must sit in memory to search fast)."""
        d = self._dim(dim)
        return {"float32": 4.0 * d, "int8": float(d), "binary": d / 8}[self.kind]

    def kept_bytes(self, dim: int) -> float:
        """Bytes per document stored in all (the rescoring vectors included)."""
        d = self._dim(dim)
        return self.searched_bytes(dim) + {None: 0.0, "int8": float(d), "float32": 4.0 * d}[self.rescore_with]

    @property
    def build_options(self) -> str:
        """The ``embedops index build`` options that store an index this way."""
        opts = {"float32": "", "int8": "--vectors int8"}.get(self.kind) or \
            "--vectors binary" + {"int8": "", "float32": " --rescore float32", None: " --rescore none"}[self.rescore_with]
        return (opts + (f" --dims {self.dims}" if self.dims else "")).strip()

    def prepare(self, docs: np.ndarray) -> PreparedFootprint:
        """``docs`` (n, dim) float32 vectors, stored this way, ready to search."""
        if self.dims is not None and self.dims > docs.shape[1]:
            raise UsageError(f"--dims {self.dims} is more than the index's {docs.shape[1]} dimensions")
        return PreparedFootprint(self, unit(docs[:, : self._dim(docs.shape[1])]))


class PreparedFootprint:
    """An index's vectors stored as one :class:`Footprint` (quantised once), searched exactly."""

    def __init__(self, footprint: Footprint, docs: np.ndarray):
        self.footprint, self.dim = footprint, docs.shape[1]
        self.floats = docs if footprint.kind == "float32" or footprint.rescore_with == "float32" else None
        if footprint.kind == "int8" or footprint.rescore_with == "int8":
            scale = Int8Scale.calibrate(docs)  # calibrated on the documents
            self.int8 = unit(scale.decode(scale.encode(docs)))  # what an int8 index scores against
        if footprint.kind == "binary":
            self.bits = sign_bits(docs)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents of each query (float32 vectors): (row indices, scores)."""
        q = unit(np.asarray(queries, np.float32)[:, : self.dim])
        out = [self._search(q[s : s + _QUERY_CHUNK], k) for s in range(0, len(q), _QUERY_CHUNK)]
        return np.vstack([o[0] for o in out]), np.vstack([o[1] for o in out])

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        fp = self.footprint
        if fp.kind == "float32":
            return top_k(q @ self.floats.T, k)
        if fp.kind == "int8":  # the float32 query's cosine with the decoded codes
            return top_k(q @ self.int8.T, k)
        qbits = sign_bits(q)
        hamming = _POPCOUNT[np.bitwise_xor(qbits[:, None, :], self.bits[None, :, :])].sum(axis=2, dtype=np.int32)
        if fp.rescore_with is None:
            return top_k(-hamming.astype(np.float32), k)
        candidates, _ = top_k(-hamming.astype(np.float32), k * RESCORE)
        stored = self.int8 if fp.rescore_with == "int8" else self.floats
        rescored = np.einsum("qd,qcd->qc", q, stored[candidates])  # the float32 query against them
        idx, scores = top_k(rescored, k)
        return np.take_along_axis(candidates, idx, axis=1), scores


_FOOTPRINTS: dict[str, Callable[[int | None], Footprint]] = {}


def register_footprint(name: str, make: Callable[[int | None], Footprint]) -> None:
    """Make footprint ``name`` available to :func:`footprint` (``make(dims)`` builds it)."""
    _FOOTPRINTS[name] = make


def footprint_names() -> list[str]:
    return list(_FOOTPRINTS)


def footprint(name: str, dims: int | None = None) -> Footprint:
    """The footprint called ``name`` (float32, int8, binary, binary+int8, binary+float32)."""
    if name not in _FOOTPRINTS:
        raise UsageError(f"unknown footprint {name!r}; choose from {', '.join(_FOOTPRINTS)}")
    if dims is not None and dims < 1:
        raise UsageError(f"--dims must be positive, got {dims}")
    return _FOOTPRINTS[name](dims)


register_footprint("float32", lambda d: Footprint("float32", d))
register_footprint("int8", lambda d: Footprint("int8", d))
register_footprint("binary", lambda d: Footprint("binary", d))
register_footprint("binary+int8", lambda d: Footprint("binary", d, "int8"))
register_footprint("binary+float32", lambda d: Footprint("binary", d, "float32"))
