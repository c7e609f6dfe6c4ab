"""Guards: promotion gates against recall regressions and catastrophic forgetting, each judging only
on evidence it can count (:mod:`.evidence`) and failing when that evidence is too thin.

Gates are plug-ins (:mod:`.plugins`, :class:`~embedops.guards.gate.Gate`), each in its own module:
``domain`` (paired bootstrap on per-query lift, judgeable gold queries only), ``slices`` (the same
test per slice of queries, Bonferroni-corrected), ``forgetting`` (general benchmarks vs
production's model and the lineage's root), ``onnx_parity`` (the serving ONNX artifact vs torch),
``index_integrity`` (index checks, ANN recall) and ``latency`` (optional). ``run_guards`` runs them,
stores the report bound to exactly what it judged (see :class:`embedops.registry.ReportBinding`);
the registry's promotion rule (``passing_report`` here) decides whether a promotion may go ahead.
``run_shadow`` compares a candidate with the alias's index side by side on the same queries.
"""

from embedops.guards.gate import Gate, GateResult, GuardContext
from embedops.guards.policy import Policy, load_policy
from embedops.guards.plugins import register_gate, registered_gates, unregister_gate
from embedops.guards.run import GuardReport, PromotionRefused, passing_report, run_guards
from embedops.guards.shadow import ShadowReport, run_shadow

__all__ = ["Gate", "GateResult", "GuardContext", "GuardReport", "Policy", "PromotionRefused", "ShadowReport",
           "load_policy", "passing_report", "register_gate", "registered_gates", "run_guards", "run_shadow",
           "unregister_gate"]
