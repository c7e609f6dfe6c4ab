"""ONNX parity gate: the exact stored artifact that will serve vs the model's torch weights
(sentence-transformers), mean and minimum cosine on sample texts (and gold queries when given)."""

from __future__ import annotations

from embedops.guards.gate import FAIL, PASS, GateResult
from embedops.guards.policy import Policy


def parity_gate(registry, record, policy: Policy, texts: list[str] | None = None) -> GateResult:
    from embedops.reembed import ensure_export, measure_parity

    precision = record.params.get("precision", "fp32")
    artifact, onnx_path = ensure_export(registry, record.model_ref, precision)  # checksums verified
    model_dir = registry.models.verified_path(record.model_ref)
    parity = measure_parity(model_dir, onnx_path, precision, texts=texts)
    threshold = policy.parity_min_cosine if precision == "fp32" else policy.parity_min_cosine_reduced
    evidence = parity.to_dict() | {"precision": precision, "artifact_digest": artifact.digest}
    if parity.min_cosine < threshold:
        return GateResult("onnx_parity", FAIL, parity.min_cosine, threshold,
                          f"{precision} export min cosine {parity.min_cosine:.5f} < {threshold}", evidence)
    return GateResult("onnx_parity", PASS, parity.min_cosine, threshold,
                      f"{precision} export min cosine {parity.min_cosine:.5f} (mean {parity.mean_cosine:.5f})", evidence)
