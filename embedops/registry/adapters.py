"""Query adapters in the registry: each is a checksummed artifact of the new model version it
serves, with its lineage (the old index it bridges to, that index's model, the document sample and
the fit's figures) in the artifact's metadata.

An adapter's id is ``adapter-`` and the first 12 hex digits of its files' manifest digest, so the
id names exactly these weights. Loading verifies every file's sha256 (as for model files): a
changed byte raises :class:`~embedops.errors.ChecksumMismatchError`.

>>> rec = reg.adapters.put("minilm-ft@1", "scifact--minilm-v1--707bb951", adapter, figures)  # doctest: +SKIP
>>> reg.adapters.load(rec.adapter_id).kind                                                   # doctest: +SKIP
'procrustes'
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedops.encoding.adapter import QueryAdapter
from embedops.errors import NotFoundError, UsageError
from embedops.records import sql_str
from embedops.registry.artifacts import ArtifactRecord, ArtifactRegistry

ID_PREFIX = "adapter-"
KIND_PREFIX = "adapter:"  # artifact kinds are adapter:<kind>:<old index id>


@dataclass(frozen=True)
class AdapterRecord:
    """A stored adapter: which model's queries it maps into which index's space, and how it was fitted."""

    adapter_id: str
    model_ref: str  # the new model (whose queries it maps)
    index_id: str  # the old index (whose space it maps into)
    kind: str
    artifact: ArtifactRecord

    @property
    def meta(self) -> dict[str, Any]:
        return self.artifact.meta

    def to_dict(self) -> dict[str, Any]:
        return {"adapter_id": self.adapter_id, "model_ref": self.model_ref, "index_id": self.index_id,
                "kind": self.kind, "digest": self.artifact.digest, "created_at": self.artifact.created_at,
                "meta": self.meta}


def _record(artifact: ArtifactRecord) -> AdapterRecord:
    _, kind, index_id = artifact.kind.split(":", 2)
    return AdapterRecord(ID_PREFIX + artifact.digest[:12], artifact.model_ref, index_id, kind, artifact)


class AdapterRegistry:
    """Adapters stored as artifacts of the model versions whose queries they map."""

    def __init__(self, artifacts: ArtifactRegistry):
        self.artifacts = artifacts

    def put(self, model_ref: str, index_id: str, adapter: QueryAdapter, meta: dict[str, Any]) -> AdapterRecord:
        """Store ``adapter`` (its weights and ``meta``: lineage and fit figures) for ``model_ref`` -> ``index_id``."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = QueryAdapter(adapter.kind, adapter.weights, meta).save(Path(tmp) / "adapter")
            artifact = self.artifacts.put(model_ref, f"{KIND_PREFIX}{adapter.kind}:{index_id}", folder, meta=meta)
        return _record(artifact)

    def list(self, model_ref: str | None = None) -> list[AdapterRecord]:
        """Every stored adapter (of ``model_ref``), newest first."""
        where = f"kind LIKE {sql_str(KIND_PREFIX + '%')}"
        if model_ref:
            where += f" AND model_ref = {sql_str(model_ref)}"
        return [_record(a) for a in self.artifacts.matching(where)]

    def get(self, adapter_id: str) -> AdapterRecord:
        if not re.fullmatch(ID_PREFIX + "[0-9a-f]{12}", adapter_id):
            raise UsageError(f"{adapter_id!r} is not an adapter id (adapter- and 12 hex digits, as 'embedops "
                             "adapter fit' prints)")
        digest = adapter_id[len(ID_PREFIX):]
        found = self.artifacts.matching(f"kind LIKE {sql_str(KIND_PREFIX + '%')} AND digest LIKE {sql_str(digest + '%')}")
        if not found:
            raise NotFoundError(f"no adapter {adapter_id}; 'embedops adapter list' shows the stored ones")
        return _record(found[0])

    def load(self, adapter_id: str) -> tuple[AdapterRecord, QueryAdapter]:
        """The record and the adapter, its files' checksums verified first."""
        record = self.get(adapter_id)
        return record, QueryAdapter.load(self.artifacts.verified_path(record.artifact))
