"""How an index keeps and searches its vectors, as one typed record (issue #36): the stored vector
kind and dimensions, the ANN index kind and its parameters, and the search settings every reader
uses. The CLI (`index build` options), the pipeline's ``[index]`` section and the library all make
one :class:`IndexSettings`; :class:`~embedops.reembed.IndexBuild` builds with it and the index
record keeps it (``params["index"]``), so readers search the way the index was built.

ANN kinds are LanceDB's (https://lancedb.github.io/documentation/concepts/indexing.html): IVF_PQ
(product quantisation), IVF_SQ (scalar), IVF_RQ (RaBitQ) and IVF_HNSW_SQ (HNSW graphs per
partition); ``auto`` is IVF_PQ; ``none`` never builds one. Any kind is built once the index has
``ann_threshold`` documents (below it, exact search is fast and an IVF index cannot be trained).

>>> IndexSettings(ann="ivf_hnsw_sq", ann_threshold=1_000, nprobes=10).ann_kind(5_000)
'IVF_HNSW_SQ'
>>> try:
...     IndexSettings(ann="hnsw")
... except UsageError as exc:
...     print(exc)
index setting 'ann': unknown kind 'hnsw'; choose one of auto, none, ivf_pq, ivf_sq, ivf_rq, ivf_hnsw_sq, ivf_flat
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from embedops.errors import UsageError

ANN_KINDS = ("auto", "none", "ivf_pq", "ivf_sq", "ivf_rq", "ivf_hnsw_sq", "ivf_flat")
STORED_VECTORS = ("float32", "int8", "binary")  # embedops.index.codecs: how each is stored
RESCORE_WITH = ("int8", "float32", "none")
# LanceDB searches float vectors with every ANN kind and uint8 sign bits with hamming (IVF_FLAT
# only); it does not search int8 columns, so an int8 index is scanned exactly by embedops.
_ANN_FOR = {"float32": ANN_KINDS, "int8": ("auto", "none"), "binary": ("auto", "none", "ivf_flat")}


@dataclass(frozen=True)
class SearchSettings:
    """LanceDB ANN query settings used for every search of an index."""

    nprobes: int = 20
    refine_factor: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class IndexSettingError(UsageError):
    """A bad index setting; ``key`` names it (a config file reports it at that key's line)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"index setting {key!r}: {message}")
        self.key, self.reason = key, message


def _bad(key: str, message: str) -> IndexSettingError:
    return IndexSettingError(key, message)


@dataclass(frozen=True)
class IndexSettings:
    """``vectors``: stored kind (float32, int8 or binary); ``rescore``: what a binary index
    re-ranks its best hamming candidates with (int8 codes, float32 vectors, or none); ``dims``:
    leading dimensions kept (None: all; a Matryoshka truncation);
    ``ann``: ANN index kind (see the module docstring); ``ann_threshold``: documents from which
    one is built; ``partitions`` (IVF, default sqrt(documents)), ``sub_vectors`` (IVF_PQ,
    default dimensions / 8); ``nprobes`` and ``refine_factor``: what every search of it uses."""

    vectors: str = "float32"
    rescore: str = "int8"
    dims: int | None = None
    ann: str = "auto"
    ann_threshold: int = 100_000
    partitions: int | None = None
    sub_vectors: int | None = None
    nprobes: int = 20
    refine_factor: int = 5

    def __post_init__(self) -> None:
        if self.vectors not in STORED_VECTORS:
            raise _bad("vectors", f"unknown kind {self.vectors!r}; choose one of {', '.join(STORED_VECTORS)}")
        if self.rescore not in RESCORE_WITH:
            raise _bad("rescore", f"unknown kind {self.rescore!r}; choose one of {', '.join(RESCORE_WITH)}")
        if self.dims is not None and (isinstance(self.dims, bool) or not isinstance(self.dims, int) or self.dims < 8):
            raise _bad("dims", f"must be a whole number >= 8, got {self.dims!r}")
        if self.ann not in ANN_KINDS:
            raise _bad("ann", f"unknown kind {self.ann!r}; choose one of {', '.join(ANN_KINDS)}")
        if self.ann not in _ANN_FOR[self.vectors]:
            raise _bad("ann", f"{self.ann!r} does not index {self.vectors} vectors; choose one of "
                       f"{', '.join(_ANN_FOR[self.vectors])}")
        for key, low in (("ann_threshold", 1), ("partitions", 1), ("sub_vectors", 1), ("nprobes", 1),
                         ("refine_factor", 1)):
            value = getattr(self, key)
            if value is None and key in ("partitions", "sub_vectors"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise _bad(key, f"must be a whole number >= {low}, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IndexSettings:
        """The settings an index record keeps (missing keys: the defaults, as older indexes were built)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def search(self) -> SearchSettings:
        return SearchSettings(self.nprobes, self.refine_factor)

    @property
    def footprint(self) -> str:
        """The kept vectors in :mod:`embedops.index.footprints`' names (``binary+int8@256``)."""
        base = self.vectors + (f"+{self.rescore}" if self.vectors == "binary" and self.rescore != "none" else "")
        return base + (f"@{self.dims}" if self.dims else "")

    def ann_kind(self, documents: int) -> str | None:
        """The LanceDB index type to build over ``documents`` rows (None: exact search only)."""
        if self.ann == "none" or documents < self.ann_threshold or self.vectors == "int8":
            return None
        if self.ann == "auto":
            return "IVF_FLAT" if self.vectors == "binary" else "IVF_PQ"
        return self.ann.upper()
