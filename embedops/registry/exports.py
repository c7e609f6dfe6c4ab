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


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``precision="auto"`` resolved to for one model on this machine, and why."""

    precision: str
    reason: str

    def to_dict(self) -> dict:
        return {"precision": self.precision, "reason": self.reason}


def choose_precision(registry: Registry, model_ref: str, requested: str = "auto", *,
                     providers: list[str] | None = None, device: str = "auto", runtime: str = "auto") -> PrecisionChoice:
    """``requested`` as given, or for ``auto``: ``bf16`` when the export runs on a CPU with AVX512-BF16
    or AMX through OpenVINO's runtime *and* the model's bf16 export passes parity (min cosine >= 0.99
    against sentence-transformers, exported and stored here the first time); ``fp32`` otherwise,
    saying why (a GPU, a CPU without bf16, OpenVINO missing or not chosen, or parity failed)."""
    from embedops.cpu import cpu_features
    from embedops.encoding import choose_providers, openvino_runtime

    if requested != "auto":
        _check_precision(requested)
        return PrecisionChoice(requested, "as asked")
    cpu = cpu_features()
    if choose_providers(providers, device) != ["CPUExecutionProvider"] or providers:
        return PrecisionChoice("fp32", "fp32: not a CPU run of OpenVINO's runtime (bf16 is a CPU precision)")
    if not cpu.bf16:
        return PrecisionChoice("fp32", f"fp32: {cpu.describe()} has no AVX512-BF16 or AMX")
    if runtime not in ("auto", "openvino") or not openvino_runtime.available():
        return PrecisionChoice("fp32", "fp32: bf16 needs OpenVINO's runtime, which is not installed or not chosen")
    try:
        record, _ = ensure_export(registry, model_ref, "bf16", device="cpu", runtime="auto")
    except ExportError as exc:
        return PrecisionChoice("fp32", f"fp32: the bf16 export failed parity ({exc})")
    parity = record.meta.get("parity", {})
    return PrecisionChoice("bf16", f"bf16: {cpu.describe()}; the bf16 export's min cosine to "
                                   f"sentence-transformers is {parity.get('min_cosine', float('nan')):.5f} "
                                   f"(parity needs {parity.get('threshold', 0.99)})")


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
