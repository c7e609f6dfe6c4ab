"""What each dashboard page shows, read from a registry into typed records (no HTML here).

Every figure comes from the store's own records: alias heads and logs, model and index records,
stored guard reports (their evidence included) and the live comparisons servers record. Nothing is
cached between requests, so a page always shows the store as it is.

>>> cards = overview(registry).cards                                  # doctest: +SKIP
>>> [(c.state.name, c.state.value) for c in cards]                   # doctest: +SKIP
[('production', 'ops--tiny-v2--1c9e')]
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from embedops.app.live import worst_disagreements
from embedops.errors import NotFoundError, UsageError
from embedops.guards.summary import evidence_line, slice_rows
from embedops.index import IndexRecord
from embedops.registry import AliasState, ModelVersion, Registry, StoredReport, is_bridge_id
from embedops.registry.live import LiveComparison

LIVE_WINDOW = _dt.timedelta(hours=1)  # "the shadow agreement of the last hour"


@dataclass(frozen=True)
class AliasCard:
    """One alias on the overview: its head record, the indexes it names, and live agreement."""

    state: AliasState
    index: IndexRecord | None
    canary_index: IndexRecord | None
    agreement: float | None  # mean overlap@k of its live comparisons in the last hour
    compared: int  # how many live comparisons that mean is over
    warning: str | None  # an override or an automatic switch, said in words


@dataclass(frozen=True)
class Overview:
    cards: list[AliasCard]
    models: int
    indexes: int
    reports: int


@dataclass(frozen=True)
class ModelNode:
    """A model version placed in its lineage graph: ``depth`` steps from its root, ``row`` among them."""

    model: ModelVersion
    depth: int
    row: int

    @property
    def kind(self) -> str:
        m = self.model.metrics
        if self.model.parent is None:
            return "base"
        alpha = m.get("alpha")
        return "interpolated" if alpha is not None and float(alpha) < 1.0 else "fine-tuned"


@dataclass(frozen=True)
class IndexRow:
    record: IndexRecord
    aliases: list[str]  # aliases whose value (or canary) is this index
    verdict: str | None  # the latest guard verdict, if any
    report_id: str | None


@dataclass(frozen=True)
class ReportView:
    """A stored guard report with the evidence its plots are drawn from."""

    report: StoredReport
    evidence: dict[str, Any]
    lost_most: list[dict[str, Any]] = field(default_factory=list)
    evidence_lines: dict[str, str] = field(default_factory=dict)  # gate name -> what it judged, in words
    slices: list[dict[str, Any]] = field(default_factory=list)  # the slice gate's table
    slice_note: str = ""


@dataclass(frozen=True)
class LivePoint:
    minute: str  # UTC, ISO to the minute
    overlap: float
    primary_ms: float
    other_ms: float
    queries: int


@dataclass(frozen=True)
class LiveSeries:
    """Live comparisons of one (kind, alias, answering index, mirrored index) pair, per minute."""

    kind: str
    alias: str
    primary_index: str
    other_index: str
    points: list[LivePoint]

    @property
    def queries(self) -> int:
        return sum(p.queries for p in self.points)

    @property
    def overlap(self) -> float:
        return sum(p.overlap * p.queries for p in self.points) / max(1, self.queries)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _warning(state: AliasState) -> str | None:
    if state.automatic:
        return f"switched automatically by {state.actor}: {state.reason or 'no reason recorded'}"
    if state.override:
        return f"promoted by override, without a passing guard report: {state.reason or 'no reason recorded'}"
    if state.canary is not None and state.canary.override:
        return "its canary was started by override, without a passing guard report"
    return None


def overview(registry: Registry, *, now: _dt.datetime | None = None) -> Overview:
    """Each alias with its indexes, when and by whom it was switched, canary share, live agreement."""
    indexes = {i.index_id: i for i in registry.indexes.list()}
    since = ((now or _now()) - LIVE_WINDOW).isoformat(timespec="milliseconds")
    live: dict[str, list[float]] = {}
    for row in registry.live.read(since=since):
        live.setdefault(row.alias, []).append(row.overlap)
    cards = []
    for state in sorted(registry.aliases.list(), key=lambda a: (a.name != "production", a.name)):
        overlaps = live.get(state.name, [])
        cards.append(AliasCard(
            state, _target(registry, indexes, state.value),
            _target(registry, indexes, state.canary.index_id if state.canary else None),
            sum(overlaps) / len(overlaps) if overlaps else None, len(overlaps), _warning(state)))
    return Overview(cards, registry.models.count(), len(indexes), registry.reports.count())


def _target(registry: Registry, indexes: dict[str, IndexRecord], target_id: str | None) -> IndexRecord | None:
    """The record an alias names: an index from ``indexes``, or a bridge's view (an adapter id)."""
    if not target_id:
        return None
    if target_id in indexes or not is_bridge_id(target_id):
        return indexes.get(target_id)
    try:
        return registry.target(target_id)
    except (NotFoundError, UsageError):  # the adapter or its index is gone: the card says "-"
        return None


TIMELINE_PAGE = 100  # records of an alias a page shows


def alias_timeline(registry: Registry, name: str, *, before: int | None = None) -> list[AliasState]:
    """The latest :data:`TIMELINE_PAGE` records of alias ``name`` (before record ``before``), oldest
    first, from its own compare-and-swap log; NotFoundError if it has none."""
    records = registry.aliases.history(name, last=TIMELINE_PAGE, before=before)
    if not records and before is None:
        raise NotFoundError(f"alias {name!r} has no records")
    return records


def lineage(registry: Registry) -> list[ModelNode]:
    """Every model version placed by lineage: roots at depth 0, each child one deeper, rows in
    creation order within a depth."""
    models = sorted(registry.models.list(), key=lambda m: m.created_at)
    by_ref = {m.ref: m for m in models}
    depth: dict[str, int] = {}

    def depth_of(m: ModelVersion, seen: frozenset = frozenset()) -> int:
        if m.ref not in depth:
            parent = by_ref.get(m.parent or "")
            depth[m.ref] = 0 if parent is None or m.ref in seen else depth_of(parent, seen | {m.ref}) + 1
        return depth[m.ref]

    rows: dict[int, int] = {}
    nodes = []
    for m in models:
        d = depth_of(m)
        nodes.append(ModelNode(m, d, rows.get(d, 0)))
        rows[d] = rows.get(d, 0) + 1
    return nodes


def index_rows(registry: Registry) -> list[IndexRow]:
    """Every index, newest first, with the aliases that name it and its latest guard verdict."""
    named: dict[str, list[str]] = {}
    for a in registry.aliases.list():
        if a.value:
            named.setdefault(a.value, []).append(a.name)
        if a.canary:
            named.setdefault(a.canary.index_id, []).append(f"{a.name} (canary {a.canary.percent:g}%)")
    latest = {r.index_id: r for r in registry.reports.latest()}
    rows = [IndexRow(i, named.get(i.index_id, []), latest[i.index_id].verdict if i.index_id in latest else None,
                     latest[i.index_id].report_id if i.index_id in latest else None)
            for i in registry.indexes.list()]
    return sorted(rows, key=lambda r: r.record.created_at, reverse=True)


def reports(registry: Registry) -> list[StoredReport]:
    """Every stored guard report, newest first."""
    return sorted(registry.reports.list(), key=lambda r: r.created_at, reverse=True)


def report_view(registry: Registry, report_id: str) -> ReportView:
    """A report and the evidence of its plots, rebuilt from what the report stored: the domain gate's
    per-query deltas and recall@k curves, the forgetting gate's benchmarks."""
    report = registry.reports.get(report_id)
    if report is None:
        raise NotFoundError(f"guard report {report_id!r} not found")
    domain = (report.gate("domain") or {}).get("evidence") or {}
    forgetting = (report.gate("forgetting") or {}).get("evidence") or {}
    evidence: dict[str, Any] = {"metric": domain.get("metric", "metric")}
    if domain.get("delta_values"):
        evidence["per_query_delta"] = dict(enumerate(domain["delta_values"]))
    if domain.get("recall_curves"):
        evidence["recall_curves"] = domain["recall_curves"]
    if forgetting.get("benchmarks"):
        evidence["general"] = [b for b in forgetting["benchmarks"] if b.get("base") is not None]
    sliced = report.gate("slices") or {}
    ev = sliced.get("evidence") or {}
    note = (f"{ev['source']}; {ev['correction']}, each interval at {ev['confidence_each']:.1%}; a slice fails "
            f"below -{ev['slice_tolerance']:g}" if ev.get("slices") else "")
    return ReportView(report, evidence, list(domain.get("lost_most") or []),
                      {g["name"]: evidence_line(g) for g in report.gates}, slice_rows(sliced), note)


@dataclass(frozen=True)
class LiveView:
    since: str
    series: list[LiveSeries]  # the pair seen most recently first
    disagreements: list[LiveComparison]  # lowest overlap first


def live_view(registry: Registry, *, since: str | None = None, now: _dt.datetime | None = None,
              worst: int = 10) -> LiveView:
    """Live comparisons since ``since`` (default: the last hour), read once: one series per compared
    pair, averaged per minute, and the ``worst`` disagreements."""
    since = since or ((now or _now()) - LIVE_WINDOW).isoformat(timespec="milliseconds")
    rows = registry.live.read(since=since)
    groups: dict[tuple[str, str, str, str], dict[str, list[LiveComparison]]] = {}
    for r in rows:
        key = (r.kind, r.alias, r.primary_index, r.other_index)
        groups.setdefault(key, {}).setdefault(r.ts[:16], []).append(r)
    series = []
    for (kind, alias, primary, other), minutes in groups.items():
        points = [LivePoint(m, sum(r.overlap for r in rs) / len(rs), median(r.primary_ms for r in rs),
                            median(r.other_ms for r in rs), len(rs)) for m, rs in sorted(minutes.items())]
        series.append(LiveSeries(kind, alias, primary, other, points))
    series.sort(key=lambda s: s.points[-1].minute, reverse=True)
    return LiveView(since, series, worst_disagreements(rows, worst))
