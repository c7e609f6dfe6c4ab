"""Index integrity gate: counts, ids, NaN, norms and dimension, and ANN recall vs exact search on a
sample when the index has an ANN index (re-checked now, not read from the build record)."""

from __future__ import annotations

from embedops.guards.gate import FAIL, PASS, GateResult
from embedops.guards.policy import Policy


def integrity_gate(registry, index_id: str, policy: Policy) -> GateResult:
    from embedops.reembed import IntegrityError, check_index_integrity

    try:
        checks = check_index_integrity(registry, index_id)
    except IntegrityError as exc:
        return GateResult("index_integrity", FAIL, None, None, str(exc))
    ann = checks.get("ann")
    if ann:
        recall = ann["recall@10_vs_exact"]
        if recall < policy.ann_min_recall:
            return GateResult("index_integrity", FAIL, recall, policy.ann_min_recall,
                              f"ANN recall@10 vs exact {recall:.3f} < {policy.ann_min_recall}", checks)
    return GateResult("index_integrity", PASS, checks["rows"], None,
                      f"{checks['rows']} rows match the corpus; no NaN; max norm error {checks['max_norm_error']:.2g}", checks)
