"""Live signals of one server process, kept for a bounded time: each index's requests (latency, ok)
and each mirrored comparison (overlap@k, both latencies). The rollback judgement and the
Prometheus gauges read windows of them; nothing here touches the store.

>>> signals = LiveSignals()
>>> signals.request("production", "idx-a", 4.2, ok=True, now=10.0)
>>> signals.requests("production", "idx-a", since=0.0)
[(4.2, True)]
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class _Request:
    t: float
    ms: float
    ok: bool


@dataclass(frozen=True)
class _Comparison:
    t: float
    overlap: float
    primary_ms: float
    other_ms: float


class LiveSignals:
    """Thread-safe, bounded windows of live signals (``maxlen`` samples per series, monotonic times)."""

    def __init__(self, maxlen: int = 20_000):
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], deque[_Request]] = {}
        self._comparisons: dict[tuple[str, str, str, str], deque[_Comparison]] = {}

    def request(self, alias: str, index_id: str, ms: float, *, ok: bool, now: float | None = None) -> None:
        sample = _Request(time.monotonic() if now is None else now, ms, ok)
        with self._lock:
            self._requests.setdefault((alias, index_id), deque(maxlen=self._maxlen)).append(sample)

    def comparison(self, kind: str, alias: str, primary: str, other: str, overlap: float, primary_ms: float,
                   other_ms: float, *, now: float | None = None) -> None:
        sample = _Comparison(time.monotonic() if now is None else now, overlap, primary_ms, other_ms)
        with self._lock:
            self._comparisons.setdefault((kind, alias, primary, other), deque(maxlen=self._maxlen)).append(sample)

    def requests(self, alias: str, index_id: str, *, since: float) -> list[tuple[float, bool]]:
        """``(latency_ms, ok)`` of ``index_id``'s requests for ``alias`` at or after ``since``."""
        with self._lock:
            series = list(self._requests.get((alias, index_id), ()))
        return [(r.ms, r.ok) for r in series if r.t >= since]

    def comparisons(self, kind: str, alias: str, primary: str, other: str, *,
                    since: float) -> list[tuple[float, float, float]]:
        """``(overlap, primary_ms, other_ms)`` of the comparisons of ``primary`` with ``other``."""
        with self._lock:
            series = list(self._comparisons.get((kind, alias, primary, other), ()))
        return [(c.overlap, c.primary_ms, c.other_ms) for c in series if c.t >= since]

    def agreement(self, *, since: float) -> dict[tuple[str, str], float]:
        """Mean overlap@k per ``(kind, alias)`` over the comparisons at or after ``since``."""
        with self._lock:
            items = [(key, list(series)) for key, series in self._comparisons.items()]
        sums: dict[tuple[str, str], list[float]] = {}
        for (kind, alias, _, _), series in items:
            sums.setdefault((kind, alias), []).extend(c.overlap for c in series if c.t >= since)
        return {key: sum(v) / len(v) for key, v in sums.items() if v}
