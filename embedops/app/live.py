"""The running comparison of live traffic, as ``embedops shadow live`` and ``canary status`` show it:
what servers recorded when they mirrored live queries to a second index
(:class:`embedops.registry.LiveComparison`), summed up per pair of indexes, with the queries on
which the two disagreed most.

>>> summary = live_summary(registry, since=parse_since("1h"))      # doctest: +SKIP
>>> summary.pairs[0].overlap, summary.disagreements[0].query        # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from embedops.errors import EmbedopsError, UsageError
from embedops.registry import LiveComparison, Registry, open_encoder

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str | None, *, now: _dt.datetime | None = None) -> str | None:
    """``--since`` as an ISO timestamp in UTC: a duration back from now (``30s``, ``10m``, ``2h``,
    ``7d``) or a timestamp (``2026-12-01T08:00``, read as UTC when it names no zone)."""
    if not text:
        return None
    now = now or _dt.datetime.now(_dt.timezone.utc)
    match = _DURATION.match(text)
    if match:
        start = now - _dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    else:
        try:
            start = _dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(f"--since {text!r}: give a duration such as 30s, 10m, 2h or 7d, or a timestamp "
                             "such as 2026-12-01T08:00") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.timezone.utc)
    return start.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SliceAgreement:
    """Live comparisons of one pair whose queries lie nearest one gold slice: how many, and the two
    indexes' mean overlap@k on them."""

    slice: str
    queries: int
    overlap: float


@dataclass(frozen=True)
class LivePair:
    """Live comparisons of one kind between the index that answered and the one mirrored to."""

    kind: str
    alias: str
    primary_index: str
    other_index: str
    queries: int
    overlap: float
    rank_correlation: float
    primary_ms: dict[str, float]
    other_ms: dict[str, float]
    first: str
    last: str
    servers: int
    slices: tuple[SliceAgreement, ...] = ()  # per gold slice, when a guard report of the judged index knows them
    slice_report: str | None = None  # the report whose slices these are


@dataclass(frozen=True)
class LiveSummary:
    since: str | None
    pairs: list[LivePair] = field(default_factory=list)
    disagreements: list[LiveComparison] = field(default_factory=list)  # lowest overlap first

    def to_dict(self) -> dict:
        return {"since": self.since, "pairs": [asdict(p) for p in self.pairs],
                "disagreements": [d.to_dict() for d in self.disagreements]}


def _latency(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def live_summary(registry: Registry, *, since: str | None = None, alias: str | None = None, kind: str | None = None,
                 worst: int = 5, by_slice: bool = True) -> LiveSummary:
    """Live comparisons recorded since ``since`` summed up per (kind, alias, answering index, mirrored
    index), newest pair first, and the ``worst`` queries with the lowest overlap@k. With ``by_slice``,
    each pair is also summed up per gold slice when a guard report of its judged index (the canary,
    the shadow index, or production after a promotion) kept its slices (:func:`slice_agreement`)."""
    rows = registry.live.read(since=since, alias=alias, kind=kind)
    groups: dict[tuple[str, str, str, str], list[LiveComparison]] = {}
    for r in rows:
        groups.setdefault((r.kind, r.alias, r.primary_index, r.other_index), []).append(r)
    pairs = [LivePair(kind=k[0], alias=k[1], primary_index=k[2], other_index=k[3], queries=len(g),
                      overlap=float(np.mean([r.overlap for r in g])),
                      rank_correlation=float(np.mean([r.rank_correlation for r in g])),
                      primary_ms=_latency([r.primary_ms for r in g]), other_ms=_latency([r.other_ms for r in g]),
                      first=g[0].ts, last=g[-1].ts, servers=len({r.server for r in g}))
             for k, g in groups.items()]
    if by_slice:
        pairs = [_with_slices(registry, p, groups[(p.kind, p.alias, p.primary_index, p.other_index)]) for p in pairs]
    pairs.sort(key=lambda p: p.last, reverse=True)
    return LiveSummary(since, pairs, worst_disagreements(rows, worst))


SLICE_ROWS = 5000  # the most recent comparisons of a pair put in slices (each distinct query embedded once)


def _with_slices(registry: Registry, pair: LivePair, rows: list[LiveComparison]) -> LivePair:
    report, slices = slice_agreement(registry, pair, rows)
    return replace(pair, slices=tuple(slices), slice_report=report) if slices else pair


def slice_agreement(registry: Registry, pair: LivePair, rows: list[LiveComparison]) -> tuple[str | None, list[SliceAgreement]]:
    """``(report id, per-slice agreement)`` of a pair's live comparisons: each query put in the gold
    slice whose centre (kept by the newest guard report of the judged index) is nearest to it under
    the model that made the centres (cosine); ``(None, [])`` when no report kept slices, or that
    model has no stored export (nothing is exported here)."""
    judged = pair.other_index if pair.kind == "shadow" else pair.primary_index
    report = next((r for r in reversed(registry.reports.for_index(judged))
                   if ((r.gate("slices") or {}).get("evidence") or {}).get("centroids")), None)
    if report is None:
        return None, []
    evidence = report.gate("slices")["evidence"]
    names = list(evidence["centroids"])
    centres = np.asarray([evidence["centroids"][n] for n in names], dtype=np.float32)
    try:
        encoder = open_encoder(registry, evidence["centroid_model"], "fp32", create=False)
    except EmbedopsError:
        return None, []
    rows = rows[-SLICE_ROWS:]
    texts = list(dict.fromkeys(r.query for r in rows))
    vectors = encoder.encode(texts)
    nearest = dict(zip(texts, np.argmax(vectors @ centres.T, axis=1)))
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(names[int(nearest[r.query])], []).append(r.overlap)
    return report.report_id, sorted((SliceAgreement(n, len(v), float(np.mean(v))) for n, v in groups.items()),
                                    key=lambda a: a.overlap)


def worst_disagreements(rows: list[LiveComparison], worst: int = 5) -> list[LiveComparison]:
    """The ``worst`` comparisons with the lowest overlap@k (then rank correlation), each query of a
    compared pair once, however often it was asked."""
    out, seen = [], set()
    for r in sorted(rows, key=lambda r: (r.overlap, r.rank_correlation)):
        key = (r.kind, r.primary_index, r.other_index, r.query)
        if key not in seen and len(out) < worst:
            seen.add(key)
            out.append(r)
    return out
