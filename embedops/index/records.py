"""What an index is: its record (model version, corpus, table, state) and its build parameters.

The registry stores these records (:mod:`embedops.registry.indexes`); the re-embedding stage fills
the table. States: ``building`` -> ``ready`` | ``failed``; ``ready`` -> ``retired``.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from embedops.index.codecs import VectorCodec, codec_for
from embedops.index.settings import IndexSettings
from embedops.index.table import check_table_name
from embedops.records import dumps, loads


@dataclass(frozen=True)
class IndexParams:
    """How an index was built (stored as the record's ``params``)."""

    precision: str = "fp32"
    corpus_version: int | None = None
    onnx_digest: str | None = None
    dim: int | None = None
    provider: str | None = None
    index: IndexSettings = field(default_factory=IndexSettings)  # how its vectors are kept and searched
    calibration: list[list[float]] | None = None  # int8 codes: per-dimension [low, high], from the first documents

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> IndexParams:
        return cls(precision=params.get("precision", "fp32"), corpus_version=params.get("corpus_version"),
                   onnx_digest=params.get("onnx_digest"), dim=params.get("dim"), provider=params.get("provider"),
                   index=IndexSettings.from_dict(params.get("index")), calibration=params.get("calibration"))

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "corpus_version": self.corpus_version, "onnx_digest": self.onnx_digest,
                "dim": self.dim, "provider": self.provider, "index": self.index.to_dict()} \
            | ({"calibration": self.calibration} if self.calibration is not None else {})

    @property
    def codec(self) -> VectorCodec:
        """How the index's table stores its vectors (:mod:`embedops.index.codecs`)."""
        return codec_for(self.index, int(self.dim or self.index.dims or 0), self.calibration)


class IndexStatus(str, enum.Enum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    RETIRED = "retired"


ALLOWED_MOVES = {  # status -> the statuses it may move to
    IndexStatus.BUILDING: {IndexStatus.BUILDING, IndexStatus.READY, IndexStatus.FAILED},
    IndexStatus.FAILED: {IndexStatus.BUILDING, IndexStatus.FAILED},
    IndexStatus.READY: {IndexStatus.READY, IndexStatus.RETIRED},
    IndexStatus.RETIRED: {IndexStatus.RETIRED, IndexStatus.READY},
}


@dataclass(frozen=True)
class Bridge:
    """What makes a record a *bridge* (issue #35): a new model's queries mapped by a query adapter
    into an old index's space. The record then bears the adapter's id and the new model's ref, and
    ``index_id`` here names the old index whose table it searches."""

    adapter_id: str
    index_id: str  # the old index (its table, corpus and vectors)
    index_model_ref: str  # the model that built the old index
    kind: str  # the adapter's kind: procrustes, affine or mlp

    def to_dict(self) -> dict[str, Any]:
        return {"adapter_id": self.adapter_id, "index_id": self.index_id, "index_model_ref": self.index_model_ref,
                "kind": self.kind}


@dataclass(frozen=True)
class IndexRecord:
    """One corpus index: embeddings of ``corpus`` by ``model_ref`` in LanceDB table ``table_name``."""

    index_id: str
    model_ref: str
    corpus: str
    table_name: str
    status: IndexStatus
    created_at: str
    updated_at: str
    table_version: int | None = None
    doc_count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    bridge: Bridge | None = None  # set on a bridge's view of its old index (never stored in the index table)

    @property
    def label(self) -> str:
        """How messages name it: ``index ID``, or ``bridge ID's index OLD_ID``."""
        return f"bridge {self.index_id}'s index {self.bridge.index_id}" if self.bridge else f"index {self.index_id}"

    @property
    def settings(self) -> IndexParams:
        """The build parameters, typed (``params`` is how they are stored)."""
        return IndexParams.from_dict(self.params)

    @property
    def precision(self) -> str:
        return self.settings.precision

    def built_from(self, model_ref: str, corpus: str, precision: str | None = None) -> bool:
        """Whether this index embeds ``corpus`` with ``model_ref`` (at ``precision``, when given)."""
        return (self.model_ref == model_ref and self.corpus == corpus
                and (precision is None or self.precision == precision))

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_id": self.index_id, "model_ref": self.model_ref, "corpus": self.corpus,
            "table_name": self.table_name, "table_version": self.table_version,
            "status": self.status.value, "doc_count": self.doc_count, "params": self.params,
            "metrics": self.metrics, "created_at": self.created_at, "updated_at": self.updated_at,
        } | ({"bridge": self.bridge.to_dict()} if self.bridge else {})

    def _row(self) -> dict[str, Any]:
        if self.bridge is not None:
            raise ValueError(f"{self.index_id} is a bridge's view of index {self.bridge.index_id}: it is not stored")
        return self.to_dict() | {"params": dumps(self.params), "metrics": dumps(self.metrics)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "IndexRecord":
        check_table_name(row["index_id"], row["table_name"])
        return cls(
            index_id=row["index_id"], model_ref=row["model_ref"], corpus=row["corpus"],
            table_name=row["table_name"], status=IndexStatus(row["status"]), created_at=row["created_at"],
            updated_at=row["updated_at"], table_version=row["table_version"], doc_count=row["doc_count"],
            params=loads(row["params"]), metrics=loads(row["metrics"]),
        )


def newest_ready(records: Iterable[IndexRecord], model_ref: str, corpus: str,
                 precision: str | None = None) -> IndexRecord | None:
    """The newest ready index among ``records`` (oldest first) built from ``model_ref`` on ``corpus``."""
    for rec in reversed(list(records)):
        if rec.status is IndexStatus.READY and rec.built_from(model_ref, corpus, precision):
            return rec
    return None


def new_index_id(model_ref: str, corpus: str) -> str:
    """A fresh id: ``<corpus>--<model>-v<version>--<8 hex>``."""
    name, _, version = model_ref.partition("@")
    return f"{corpus}--{name}-v{version}--{uuid.uuid4().hex[:8]}"
