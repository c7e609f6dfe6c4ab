"""How an index table stores its vectors (issue #36): one :class:`VectorCodec` per stored kind,
turning the model's float32 vectors into table columns and back.

- ``float32``: the unit vectors as they are (``vector``, fixed-size float32; LanceDB's cosine).
- ``int8``: scalar codes, one byte per dimension, with per-dimension ranges calibrated on the first
  documents embedded and kept in the index record (``params["calibration"]``); a value outside
  them is clipped. Decoded to the centre of each code's bin.
- ``binary``: sign bits packed 8 to a byte (``vector``, fixed-size uint8; LanceDB's hamming
  metric), with, unless ``rescore="none"``, a ``rescore`` column of int8 codes or float32
  vectors that re-ranks the best candidates by hamming distance (the binary + rescoring recipe of
  Shakir, Aarsen and Lee, 2024, "Binary and Scalar Embedding Quantization for Significantly Faster
  & Cheaper Retrieval").

With ``dims`` the first ``dims`` dimensions are kept, renormalised (Matryoshka truncation); queries
are cut the same way. Sign bits come from sentence-transformers' ``quantize_embeddings("ubinary")``.
The int8 codes are computed here: its ``"int8"`` path truncates towards zero (so code 0 covers two
steps) and lets a value outside the calibration ranges wrap round in int8 instead of clipping.

>>> import numpy as np
>>> codec = codec_for(IndexSettings(vectors="int8"), 4).calibrated(np.eye(4, dtype=np.float32))
>>> codec.encode(np.eye(4, dtype=np.float32)[:1])[0].tolist()
[127, -128, -128, -128]
>>> float(codec.decode_codes(codec.encode(np.eye(4, dtype=np.float32)))[0] @ np.eye(4)[0]) > 0.999
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from embedops.errors import UsageError
from embedops.index.settings import IndexSettings

VECTOR, RESCORE = "vector", "rescore"


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _fixed(values: np.ndarray, typ: pa.DataType) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).reshape(-1), type=typ),
                                             int(values.shape[1]))


def _numpy(column, dtype) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, width)


@dataclass(frozen=True)
class Int8Scale:
    """Per-dimension ranges (``low``, ``high``) mapping floats to the 256 int8 codes."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def calibrate(cls, vectors: np.ndarray) -> Int8Scale:
        low, high = vectors.min(axis=0).astype(np.float32), vectors.max(axis=0).astype(np.float32)
        return cls(low, np.maximum(high, low + 1e-6))

    @property
    def step(self) -> np.ndarray:
        return (self.high - self.low) / 255.0

    def encode(self, x: np.ndarray) -> np.ndarray:
        codes = np.rint((np.clip(x, self.low, self.high) - self.low) / self.step) - 128
        return np.clip(codes, -128, 127).astype(np.int8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return (codes.astype(np.float32) + 128.0) * self.step + self.low

    def to_list(self) -> list[list[float]]:
        return [self.low.tolist(), self.high.tolist()]

    @classmethod
    def from_list(cls, ranges: Sequence[Sequence[float]]) -> Int8Scale:
        return cls(np.asarray(ranges[0], dtype=np.float32), np.asarray(ranges[1], dtype=np.float32))


@dataclass(frozen=True)
class VectorCodec:
    """One stored kind of an index: ``kind`` (float32, int8, binary), ``dim`` the dimensions kept,
    ``rescore`` (binary: int8, float32 or none), ``scale`` (int8 codes: the calibration, None
    until the first documents are embedded)."""

    kind: str
    dim: int
    rescore: str = "none"
    scale: Int8Scale | None = None

    @property
    def needs_calibration(self) -> bool:
        return (self.kind == "int8" or self.rescore == "int8") and self.scale is None

    @property
    def metric(self) -> str:
        return "hamming" if self.kind == "binary" else "cosine"

    def calibrated(self, vectors: np.ndarray) -> VectorCodec:
        """This codec with int8 ranges taken from ``vectors`` (model output, full dimensions)."""
        return VectorCodec(self.kind, self.dim, self.rescore, Int8Scale.calibrate(self.cut(vectors)))

    def cut(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` (n, model dim) as this index keeps them: the first ``dim``, unit length."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if not self.dim:  # a float32 index whose record predates recorded dimensions
            return vectors
        if vectors.shape[-1] < self.dim:
            raise UsageError(f"vectors have {vectors.shape[-1]} dimensions; the index keeps {self.dim}")
        return unit(vectors[..., : self.dim]) if vectors.shape[-1] != self.dim else vectors

    def require_scale(self) -> Int8Scale:
        if self.scale is None:
            raise UsageError("this index's int8 codes have no calibration (its record lacks params['calibration'])")
        return self.scale

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """int8 codes of ``vectors`` (kept dimensions)."""
        return self.require_scale().encode(self.cut(vectors))

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        return unit(self.require_scale().decode(codes))

    def fields(self) -> list[pa.Field]:
        main = {"float32": pa.list_(pa.float32(), self.dim), "int8": pa.list_(pa.int8(), self.dim),
                "binary": pa.list_(pa.uint8(), (self.dim + 7) // 8)}[self.kind]
        out = [pa.field(VECTOR, main, nullable=False)]
        if self.rescore != "none":
            typ = pa.int8() if self.rescore == "int8" else pa.float32()
            out.append(pa.field(RESCORE, pa.list_(typ, self.dim), nullable=False))
        return out

    def columns(self, vectors: np.ndarray) -> list[pa.Array]:
        """The stored columns of ``vectors`` (n, model dim), in :meth:`fields` order."""
        v = self.cut(vectors)
        main = {"float32": lambda: _fixed(v, pa.float32()), "int8": lambda: _fixed(self.encode(v), pa.int8()),
                "binary": lambda: _fixed(sign_bits(v), pa.uint8())}[self.kind]()
        if self.rescore == "none":
            return [main]
        return [main, _fixed(self.encode(v), pa.int8()) if self.rescore == "int8" else _fixed(v, pa.float32())]

    @property
    def decoded_column(self) -> str:
        """The column :meth:`decode` reads: the rescoring vectors when a binary index keeps them."""
        return RESCORE if self.kind == "binary" and self.rescore != "none" else VECTOR

    def decode(self, column) -> np.ndarray:
        """Unit float32 vectors (n, dim) from the Arrow :attr:`decoded_column`: exact for float32,
        the codes' bin centres for int8, +-1/sqrt(dim) for sign bits."""
        kind = self.rescore if self.decoded_column == RESCORE else self.kind
        if kind == "float32":
            return _numpy(column, np.float32)
        if kind == "int8":
            return self.decode_codes(_numpy(column, np.int8))
        bits = np.unpackbits(_numpy(column, np.uint8), axis=1)[:, : self.dim]
        return (bits.astype(np.float32) * 2 - 1) / np.sqrt(self.dim)

    @property
    def bytes_per_document(self) -> float:
        """Vector bytes a document keeps (the rescoring vectors included)."""
        main = {"float32": 4.0 * self.dim, "int8": float(self.dim), "binary": float((self.dim + 7) // 8)}[self.kind]
        return main + {"none": 0.0, "int8": float(self.dim), "float32": 4.0 * self.dim}[self.rescore]


def sign_bits(vectors: np.ndarray) -> np.ndarray:
    from sentence_transformers.util.quantization import quantize_embeddings

    return quantize_embeddings(np.asarray(vectors, dtype=np.float32), precision="ubinary")


_KINDS: dict[str, Callable[[IndexSettings, int], VectorCodec]] = {}


def register_vector_kind(name: str, make: Callable[[IndexSettings, int], VectorCodec]) -> None:
    """Make stored kind ``name`` available (``make(settings, dim)`` gives its codec)."""
    _KINDS[name] = make


def codec_for(settings: IndexSettings, model_dim: int, calibration: Sequence[Sequence[float]] | None = None) -> VectorCodec:
    """The codec of an index with ``settings`` over a model of ``model_dim`` dimensions;
    ``calibration``: its record's int8 ranges."""
    if settings.dims is not None and settings.dims > model_dim:
        raise UsageError(f"index setting 'dims': {settings.dims} is more than the model's {model_dim} dimensions")
    codec = _KINDS[settings.vectors](settings, settings.dims or model_dim)
    if calibration is not None:
        codec = VectorCodec(codec.kind, codec.dim, codec.rescore, Int8Scale.from_list(calibration))
    return codec


register_vector_kind("float32", lambda s, d: VectorCodec("float32", d))
register_vector_kind("int8", lambda s, d: VectorCodec("int8", d))
register_vector_kind("binary", lambda s, d: VectorCodec("binary", d, s.rescore))
