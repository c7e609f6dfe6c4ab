"""The automatic-rollback policy of ``embedops serve`` and the judgement it makes.

A server watches two things and acts on them through the registry, by the same audited
compare-and-swap a person's command uses:

* a **canary** (an index answering a share of an alias's traffic): it is aborted;
* **production after a promotion**, for ``watch`` seconds: it is rolled back to the index the
  promotion replaced (which the server keeps open).

Signals, over the last ``window`` seconds: the error rate of the judged index's requests; its p95
latency over the other index's, both measured on the same mirrored queries in the same window;
and agreement, the mean overlap@k of those mirrored queries. Nothing is decided on fewer than
``min_requests`` requests (or mirrored queries, for latency and agreement). Settings come from
``[serve.rollback]`` in ``embedops.toml``::

    [serve.rollback]
    enabled = true            # false: watch and report, never act
    max_error_rate = 0.05     # errors / requests of the judged index
    max_p95_ratio = 3.0       # judged p95 / other p95 on mirrored queries (0 = off)
    min_agreement = 0.0       # mean overlap@k with the other index (0 = off; set it per model pair)
    window = 60               # seconds of signals a decision looks at
    watch = 600               # seconds production is compared with its previous index after a promotion
    min_requests = 20         # fewer samples: no decision
    compare_fraction = 0.25   # share of canary / watched queries mirrored to the other index

>>> judge(RollbackPolicy(min_agreement=0.5, min_requests=2), "canary", requests=[(5.0, True)] * 3,
...       comparisons=[(0.1, 5.0, 5.0)] * 3, window=60).reason   # doctest: +ELLIPSIS
'automatic: canary agreement 0.10 < min_agreement 0.50 (mean overlap@k of 3 mirrored queries, last 60 s)'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config import boolean, number_in, read_policy_file, read_settings
from embedops.errors import UsageError

SECTION = "serve.rollback"


@dataclass(frozen=True)
class RollbackPolicy:
    """When a server aborts a canary or rolls production back by itself (see the module docstring)."""

    enabled: bool = True
    max_error_rate: float = 0.05
    max_p95_ratio: float = 3.0
    min_agreement: float = 0.0
    window: float = 60.0
    watch: float = 600.0
    min_requests: int = 20
    compare_fraction: float = 0.25

    def __post_init__(self):
        problems = [f"{name} {why}" for name, why in _problems(asdict(self)).items()]
        if problems:
            raise UsageError("rollback policy: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CHECKS = {
    "enabled": boolean,
    "max_error_rate": number_in(0, 1),
    "max_p95_ratio": number_in(0, 1000),
    "min_agreement": number_in(0, 1),
    "window": number_in(1, 86_400),
    "watch": number_in(0, 7 * 86_400),
    "min_requests": number_in(1, 1_000_000, integer=True),
    "compare_fraction": number_in(0, 1),
}


def _problems(values: dict[str, Any]) -> dict[str, str]:
    return {k: why for k, v in values.items() if (why := _CHECKS[k](v))}


def load_rollback_policy(path: Path | str | None = None) -> RollbackPolicy:
    """``[serve.rollback]`` of ``path`` (default ./embedops.toml when it exists), else the defaults.
    An unknown key, a wrong type or a value out of range is an InputError naming file, line and key."""
    toml = read_policy_file(path)
    if toml is None:
        return RollbackPolicy()
    toml.check_keys("serve", toml.section("serve"), ["rollback"])
    return RollbackPolicy(**read_settings(toml, SECTION, toml.section(SECTION), _CHECKS))


@dataclass(frozen=True)
class Verdict:
    """Why the judged index must go: ``signal`` (error_rate, p95_ratio, agreement) crossed its limit."""

    signal: str
    value: float
    limit: float
    reason: str


def judge(policy: RollbackPolicy, what: str, *, requests: list[tuple[float, bool]],
          comparisons: list[tuple[float, float, float]], window: float) -> Verdict | None:
    """The first limit the judged index crosses, or None.

    ``requests``: ``(latency_ms, ok)`` of the judged index's requests in the window; ``comparisons``:
    ``(overlap, judged_ms, other_ms)`` of its mirrored queries in the window; ``what`` names the
    judged side in the reason ("canary", "production")."""
    n = len(requests)
    if n >= policy.min_requests:
        errors = sum(1 for _, ok in requests if not ok)
        rate = errors / n
        if rate > policy.max_error_rate:
            return Verdict("error_rate", rate, policy.max_error_rate,
                           f"automatic: {what} error rate {100 * rate:.1f}% > max_error_rate "
                           f"{100 * policy.max_error_rate:.1f}% ({errors} of {n} requests, last {window:g} s)")
    m = len(comparisons)
    if m < policy.min_requests:
        return None
    if policy.max_p95_ratio > 0:
        judged = float(np.percentile([c[1] for c in comparisons], 95))
        other = float(np.percentile([c[2] for c in comparisons], 95))
        ratio = judged / other if other > 0 else math.inf
        if ratio > policy.max_p95_ratio:
            return Verdict("p95_ratio", ratio, policy.max_p95_ratio,
                           f"automatic: {what} p95 latency {judged:.1f} ms is {ratio:.2f}x the other index's "
                           f"{other:.1f} ms > max_p95_ratio {policy.max_p95_ratio:g} ({m} mirrored queries, "
                           f"last {window:g} s)")
    if policy.min_agreement > 0:
        agreement = float(np.mean([c[0] for c in comparisons]))
        if agreement < policy.min_agreement:
            return Verdict("agreement", agreement, policy.min_agreement,
                           f"automatic: {what} agreement {agreement:.2f} < min_agreement {policy.min_agreement:.2f} "
                           f"(mean overlap@k of {m} mirrored queries, last {window:g} s)")
    return None
