"""A model version's ONNX exports as registry artifacts, and the open encoders of a process.

:func:`ensure_export` returns the stored, checksummed export of a model at a precision (exported,
parity-checked against sentence-transformers and stored the first time). :func:`open_export`
returns it opened: checksums verified and an ONNX Runtime session started once per process for each
(store, model digest, precision, providers, batch size), through :data:`embedops.encoding.ENCODERS`.

>>> export = open_export(registry, "minilm@2")                 # doctest: +SKIP
>>> export.encoder.encode(["pg failover steps"]).shape         # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embedops.encoding import ENCODERS, META_FILE, PRECISIONS, OnnxEncoder, export_onnx, measure_parity
from embedops.errors import ExportError, ExportMissingError
from embedops.registry.artifacts import ArtifactRecord

if TYPE_CHECKING:
    from embedops.registry import Registry


@dataclass(frozen=True)
class OpenExport:
    """A verified export and the encoder running it."""

    artifact: ArtifactRecord
    path: Path
    encoder: OnnxEncoder


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def ensure_export(registry: Registry, model_ref: str, precision: str = "fp32", *,
                  providers: list[str] | None = None, device: str = "auto",
                  allow_cpu_fallback: bool = False, runtime: str = "auto",
                  create: bool = True) -> tuple[ArtifactRecord, Path]:
    """The stored, checksummed ONNX export of ``model_ref`` at ``precision``: reused when it exists,
    otherwise exported, parity-checked against sentence-transformers, then stored. With
    ``create=False`` nothing is written: a missing export raises :class:`ExportMissingError`.

    Returns ``(ArtifactRecord, verified path)``; verifies the checksums on every call. Raises
    ExportError when parity is below threshold. Parity is measured on the ``device`` and ``runtime``
    that will run the export.
    """
    _check_precision(precision)
    model = registry.models.get(model_ref)
    kind = f"onnx-{precision}"
    record = registry.artifacts.find(model.ref, kind)
    if record is not None and record.meta.get("source_digest") == model.digest:
        return record, registry.artifacts.verified_path(record)
    if not create:
        raise ExportMissingError(f"{model.ref} has no stored {precision} export; make one with 'embedops model "
                                 f"export-onnx {model.ref} --precision {precision}'")
    model_dir = registry.models.verified_path(model.ref)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        meta = export_onnx(model_dir, out, precision)
        encoder = OnnxEncoder(out, providers=providers, device=device, allow_cpu_fallback=allow_cpu_fallback,
                              runtime=runtime)
        parity = measure_parity(model_dir, encoder, precision)
        if not parity.ok:
            raise ExportError(
                f"{model.ref} {precision} export fails parity: min cosine {parity.min_cosine:.5f} < "
                f"{parity.threshold} (mean {parity.mean_cosine:.5f}) against sentence-transformers"
            )
        meta = meta | {"parity": parity.to_dict(), "source_digest": model.digest}
        (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        record = registry.artifacts.put(model.ref, kind, out, meta=meta)
    return record, registry.artifacts.verified_path(record)


def open_export(registry: Registry, model_ref: str, precision: str = "fp32", *, providers: list[str] | None = None,
                batch_size: int | None = None, device: str = "auto", allow_cpu_fallback: bool = False,
                runtime: str = "auto", create: bool = True) -> OpenExport:
    """:func:`ensure_export` (``create``: may it export and store), opened: verified and its session started once per process (``device``:
    auto, cpu or cuda; a CUDA provider that cannot start raises DeviceError unless ``allow_cpu_fallback``;
    ``runtime``: auto, onnxruntime or openvino, see :func:`~embedops.encoding.encoder.choose_runtime`)."""
    _check_precision(precision)
    model = registry.models.get(model_ref)
    key = (registry.store.uri, model.digest, precision, tuple(providers or ()), batch_size, device, allow_cpu_fallback,
           runtime)

    def open_() -> OpenExport:
        artifact, path = ensure_export(registry, model.ref, precision, providers=providers, device=device,
                                       allow_cpu_fallback=allow_cpu_fallback, runtime=runtime, create=create)
        return OpenExport(artifact, path, OnnxEncoder(path, providers=providers, batch_size=batch_size, device=device,
                                                      allow_cpu_fallback=allow_cpu_fallback, runtime=runtime))

    return ENCODERS.get(key, open_)


def open_encoder(registry: Registry, model_ref: str, precision: str = "fp32", *,
                 providers: list[str] | None = None, runtime: str = "auto", create: bool = True) -> OnnxEncoder:
    """The process's open encoder of ``model_ref`` at ``precision`` (see :func:`open_export`)."""
    return open_export(registry, model_ref, precision, providers=providers, runtime=runtime, create=create).encoder


def verified_model_dir(registry: Registry, model_ref: str) -> Path:
    """The model's own files (torch weights), checksums verified once per process and store."""
    model = registry.models.get(model_ref)
    return ENCODERS.get((registry.store.uri, model.digest, "model-files"), lambda: registry.models.verified_path(model.ref))
