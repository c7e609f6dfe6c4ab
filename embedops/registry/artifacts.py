"""Derived artifacts of a model version (e.g. its ONNX exports), stored and checksummed with it.

An artifact is a folder produced from one model version under a ``kind`` (``onnx-fp32``,
``onnx-fp16``, ``onnx-int8``...). It is content-addressed like model files, and its record keeps
the sha256 of every file plus free metadata (parity figures, pooling, dimension). Loading verifies
the checksums, exactly as for the model itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from embedops.audit import AuditLog
from embedops.checksums import FileChecksum, manifest_digest, store_content_addressed, verify_files
from embedops.errors import ChecksumMismatchError, NotFoundError
from embedops.records import dumps, loads, sql_str
from embedops.store import Store, utcnow

ARTIFACTS_TABLE = "model_artifacts"
ARTIFACTS_SCHEMA = pa.schema(
    [
        pa.field("model_ref", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("digest", pa.string(), nullable=False),
        pa.field("artifact", pa.string(), nullable=False),
        pa.field("files", pa.string(), nullable=False),
        pa.field("meta", pa.string()),
        pa.field("created_at", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class ArtifactRecord:
    model_ref: str
    kind: str
    digest: str
    artifact: str
    files: tuple[FileChecksum, ...]
    created_at: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_ref": self.model_ref, "kind": self.kind, "digest": self.digest, "artifact": self.artifact,
            "files": [f.to_dict() for f in self.files], "meta": self.meta, "created_at": self.created_at,
        }


class ArtifactRegistry:
    """Artifacts derived from model versions."""

    def __init__(self, store: Store, audit: AuditLog | None = None):
        self.store = store
        self.audit = audit or AuditLog(store)

    def _table(self):
        return self.store.table(ARTIFACTS_TABLE, ARTIFACTS_SCHEMA)

    def put(self, model_ref: str, kind: str, source: Path, meta: dict[str, Any] | None = None) -> ArtifactRecord:
        """Copy folder ``source`` into the store as ``kind`` of ``model_ref`` (replacing an older one)."""
        files = sorted(p for p in Path(source).rglob("*") if p.is_file())
        artifact, checksums = store_content_addressed(Path(source), files, self.store.artifacts, "derived")
        self.store.publish(artifact, checksums)
        digest = manifest_digest(checksums)
        record = ArtifactRecord(
            model_ref=model_ref, kind=kind, digest=digest, artifact=artifact,
            files=tuple(checksums), created_at=utcnow(), meta=meta or {},
        )
        row = record.to_dict() | {"files": dumps([f.to_dict() for f in checksums]), "meta": dumps(record.meta)}
        self._table().add(pa.Table.from_pylist([row], schema=ARTIFACTS_SCHEMA))
        self.audit.record("artifact.put", model_ref, kind=kind, digest=digest)
        return record

    def find(self, model_ref: str, kind: str) -> ArtifactRecord | None:
        where = f"model_ref = {sql_str(model_ref)} AND kind = {sql_str(kind)}"
        rows = self._table().search().where(where).limit(None).to_arrow().to_pylist()
        if not rows:
            return None
        return self._from_row(max(rows, key=lambda r: r["created_at"]))

    def matching(self, where: str) -> list[ArtifactRecord]:
        """Every artifact record matching the SQL filter ``where`` (over model_ref, kind, digest), newest first."""
        rows = self._table().search().where(where).limit(None).to_arrow().to_pylist()
        return sorted((self._from_row(r) for r in rows), key=lambda a: a.created_at, reverse=True)

    @staticmethod
    def _from_row(r: dict) -> ArtifactRecord:
        return ArtifactRecord(
            model_ref=r["model_ref"], kind=r["kind"], digest=r["digest"], artifact=r["artifact"],
            files=tuple(FileChecksum(**f) for f in json.loads(r["files"])), created_at=r["created_at"],
            meta=loads(r["meta"]),
        )

    def get(self, model_ref: str, kind: str) -> ArtifactRecord:
        rec = self.find(model_ref, kind)
        if rec is None:
            raise NotFoundError(f"no {kind} artifact for {model_ref}; export it with 'embedops model export-onnx {model_ref}'")
        return rec

    def verified_path(self, record: ArtifactRecord) -> Path:
        path = self.store.materialize(record.artifact, record.files)
        problems = verify_files(path, list(record.files))
        if problems:
            raise ChecksumMismatchError(f"{record.model_ref} [{record.kind}]", problems)
        return path
