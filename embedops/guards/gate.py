"""What a gate is: the :class:`Gate` protocol, what it reads (:class:`GuardContext`) and what it
returns (:class:`GateResult`). Gates are plug-ins (:mod:`embedops.guards.plugins`): each lives in
its own module with its evidence and judgement, and ``run_guards`` runs every registered gate.

>>> class MaxDocs:
...     name, order = "max_docs", 70
...     def run(self, ctx):
...         n = ctx.candidate.count()
...         return GateResult(self.name, PASS if n <= 1_000_000 else FAIL, n, 1_000_000, f"{n} documents")
>>> register_gate(MaxDocs())            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from embedops.index import IndexReader, IndexRecord
    from embedops.registry import ModelVersion, Policy, Registry

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class GateResult:
    """One gate's verdict: ``status`` with the measured ``value``, the ``threshold`` it was held to,
    a one-line ``reason`` and the ``evidence`` behind it."""

    name: str
    status: str
    value: float | None
    threshold: float | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class GuardContext:
    """What one guard run judges, handed to every gate in turn: the candidate index (opened), the
    index behind the alias now (``production``, None when nothing serves it) and its model, the gold
    set, the general benchmarks and the policy. ``shared`` carries what an earlier gate measured for
    later ones (the domain gate's runs: judged queries, per-query lift, latencies); ``results`` the
    verdicts so far, by gate name."""

    registry: Registry
    record: IndexRecord
    model: ModelVersion
    candidate: IndexReader
    production: IndexReader | None
    gold: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    general: list[Path]
    policy: Policy
    shared: dict[str, Any] = field(default_factory=dict)
    results: dict[str, GateResult] = field(default_factory=dict)

    @property
    def production_model(self) -> str | None:
        return self.production.record.model_ref if self.production is not None else None


class Gate(Protocol):
    """A promotion gate: ``name`` (as the policy's ``required_gates`` and reports name it), ``order``
    (gates run by ascending order: one that reads what another measured runs after it) and
    ``run``, which judges a :class:`GuardContext` and returns a :class:`GateResult` (``skip`` when
    it cannot judge: a gate the policy requires then fails)."""

    name: str
    order: int

    def run(self, ctx: GuardContext) -> GateResult: ...
