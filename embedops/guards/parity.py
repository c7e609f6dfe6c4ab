"""ONNX parity gate: the exact stored artifact that will serve vs the model's torch weights
(sentence-transformers), mean and minimum cosine on sample texts (and gold queries when given).

Takes the model's verified directory and the open encoder of its export; the threshold is the
policy's ``parity_min_cosine`` for fp32 and ``parity_min_cosine_reduced`` for fp16, int8 and bf16.
"""

from __future__ import annotations

from pathlib import Path

from embedops.encoding import OnnxEncoder, measure_parity
from embedops.guards.gate import FAIL, PASS, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy


def parity_gate(model_dir: Path, encoder: OnnxEncoder, precision: str, policy: Policy, *,
                artifact_digest: str | None = None, texts: list[str] | None = None) -> GateResult:
    parity = measure_parity(model_dir, encoder, precision, texts=texts)
    threshold = policy.parity_min_cosine if precision == "fp32" else policy.parity_min_cosine_reduced
    evidence = parity.to_dict() | {"precision": precision, "artifact_digest": artifact_digest}
    if parity.min_cosine < threshold:
        return GateResult("onnx_parity", FAIL, parity.min_cosine, threshold,
                          f"{precision} export min cosine {parity.min_cosine:.5f} < {threshold}", evidence)
    return GateResult("onnx_parity", PASS, parity.min_cosine, threshold,
                      f"{precision} export min cosine {parity.min_cosine:.5f} (mean {parity.mean_cosine:.5f})", evidence)


class ParityGate:
    """The parity gate as a plug-in: the export the candidate index serves with, at its precision."""

    name, order = "onnx_parity", 40

    def run(self, ctx: GuardContext) -> GateResult:
        from embedops.registry import open_export, verified_model_dir

        export = open_export(ctx.registry, ctx.record.model_ref, ctx.record.precision)
        return parity_gate(verified_model_dir(ctx.registry, ctx.record.model_ref), export.encoder,
                           ctx.record.precision, ctx.policy, artifact_digest=export.artifact.digest)


register_gate(ParityGate())
