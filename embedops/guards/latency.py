"""Latency gate (optional): candidate p95 query latency (encode + search) within
``latency_max_ratio`` x production's, measured on the gold queries in the same run."""

from __future__ import annotations

import numpy as np

from embedops.guards.gate import FAIL, PASS, SKIP, GateResult, GuardContext
from embedops.guards.plugins import register_gate
from embedops.guards.policy import Policy


def latency_gate(candidate_ms: list[float] | None, production_ms: list[float] | None, policy: Policy) -> GateResult:
    if policy.latency_max_ratio <= 0:
        return GateResult("latency", SKIP, None, None, "off (latency_max_ratio = 0)")
    if not candidate_ms:
        return GateResult("latency", SKIP, None, policy.latency_max_ratio, "no query was run (the domain gate had "
                          "too little evidence to search)")
    if not production_ms:
        return GateResult("latency", SKIP, None, policy.latency_max_ratio, "no production index to compare with")
    cand, prod = float(np.percentile(candidate_ms, 95)), float(np.percentile(production_ms, 95))
    ratio = cand / prod if prod else float("inf")
    evidence = {"candidate_p95_ms": cand, "production_p95_ms": prod}
    status = FAIL if ratio > policy.latency_max_ratio else PASS
    return GateResult("latency", status, ratio, policy.latency_max_ratio,
                      f"p95 {cand:.1f} ms vs {prod:.1f} ms (x{ratio:.2f}, allowed x{policy.latency_max_ratio})", evidence)


class LatencyGate:
    """The latency gate as a plug-in, on the latencies the domain gate measured."""

    name, order = "latency", 60

    def run(self, ctx: GuardContext) -> GateResult:
        runs = ctx.shared.get("runs", {})
        return latency_gate(runs.get("candidate_latency"), runs.get("production_latency"), ctx.policy)


register_gate(LatencyGate())
