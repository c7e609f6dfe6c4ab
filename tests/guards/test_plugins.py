"""Gates are plug-ins: a gate registered from outside runs in every guard run, in its order, its
verdict stored in the report and counted in the verdict, without touching run_guards."""

import pytest

from embedops.errors import UsageError
from embedops.guards import run_guards
from embedops.guards.gate import FAIL, PASS, GateResult
from embedops.guards.plugins import register_gate, registered_gates, unregister_gate
from embedops.reembed import IndexBuild
from guard_helpers import RUNBOOKS, small_gold


class MinDocs:
    """A plug-in gate: the candidate index must hold at least ``least`` documents; it reads what the
    domain gate left (the judged queries) to show that a later gate sees an earlier one's work."""

    name, order = "min_docs", 55

    def __init__(self, least: int):
        self.least, self.saw_judged = least, None

    def run(self, ctx):
        self.saw_judged = len(ctx.shared["runs"]["queries"])
        n = ctx.candidate.count()
        return GateResult(self.name, PASS if n >= self.least else FAIL, n, self.least,
                          f"{n} documents (at least {self.least})", {"documents": n})


def test_the_built_in_gates_run_in_their_order():
    assert [g.name for g in registered_gates()] == ["domain", "bridge_lift", "slices", "forgetting", "onnx_parity",
                                                    "index_integrity", "latency"]
    with pytest.raises(UsageError, match="registered already"):
        register_gate(type("Other", (), {"name": "domain", "order": 1, "run": lambda self, ctx: None})())


@pytest.mark.slow
def test_a_registered_gate_runs_and_its_failure_fails_the_report(minilm_store, sts_file):
    reg, base = minilm_store
    twin = IndexBuild(reg, "minilm@1", "runbooks").run().index
    gate = register_gate(MinDocs(least=1000))
    try:
        report = run_guards(reg, twin.index_id, gold=RUNBOOKS, general=[sts_file], policy=small_gold())
    finally:
        unregister_gate("min_docs")
    names = [g.name for g in report.gates]
    assert names.index("index_integrity") < names.index("min_docs") < names.index("latency")
    mine = next(g for g in report.gates if g.name == "min_docs")
    assert mine.status == "fail" and mine.value == 20 and gate.saw_judged == 10
    assert report.verdict == "fail" and report.stored.gate("min_docs")["evidence"] == {"documents": 20}
    assert "min_docs" in report.stored.inputs["gates"]
    assert "min_docs" not in [g.name for g in registered_gates()]
    again = run_guards(reg, twin.index_id, gold=RUNBOOKS, general=[sts_file], policy=small_gold())
    assert again.verdict == "pass" and "min_docs" not in [g.name for g in again.gates]
