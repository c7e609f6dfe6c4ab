"""What every gate returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
