"""Guards: promotion gates against recall regressions and catastrophic forgetting.

Gates (each in its own module): ``domain`` (paired bootstrap on per-query lift), ``forgetting``
(general benchmarks vs the lineage's base), ``parity`` (the serving ONNX artifact vs torch),
``integrity`` (index checks, ANN recall) and ``latency`` (optional). ``run_guards`` runs them,
stores the report bound to exactly what it judged (see :class:`embedops.registry.ReportBinding`);
the registry's promotion rule (``passing_report`` here) decides whether a promotion may go ahead.
``run_shadow`` compares a candidate with the alias's index side by side on the same queries.
"""

from embedops.guards.gate import GateResult
from embedops.guards.policy import Policy, load_policy
from embedops.guards.run import GuardReport, PromotionRefused, passing_report, run_guards
from embedops.guards.shadow import ShadowReport, run_shadow

__all__ = ["GateResult", "GuardReport", "Policy", "PromotionRefused", "ShadowReport", "load_policy", "passing_report",
           "run_guards", "run_shadow"]
