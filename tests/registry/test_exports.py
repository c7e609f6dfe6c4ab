"""A model's ONNX exports as registry artifacts, and the process-wide cache of open encoders."""

import pytest

from embedops.errors import ChecksumMismatchError
from embedops.registry import ensure_export


def test_export_is_stored_checksummed_and_reused(reg):
    record, path = ensure_export(reg, "tiny@1", "fp32")
    assert record.meta["parity"]["min_cosine"] >= 0.999
    again, _ = ensure_export(reg, "tiny@1", "fp32")
    assert again.digest == record.digest and again.created_at == record.created_at  # not re-exported
    (path / "model.onnx").write_bytes((path / "model.onnx").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ChecksumMismatchError, match="model.onnx"):
        ensure_export(reg, "tiny@1", "fp32")


def test_export_below_parity_fails(reg, monkeypatch):
    from embedops.encoding import ExportError, parity

    monkeypatch.setitem(parity.PARITY_THRESHOLDS, "fp32", 1.5)  # impossible to reach
    with pytest.raises(ExportError, match="fails parity"):
        ensure_export(reg, "tiny@1", "fp32")
    assert reg.artifacts.find("tiny@1", "onnx-fp32") is None
