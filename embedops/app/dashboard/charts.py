"""Small inline SVG charts for the dashboard: lines, bars, a histogram, a time axis and a lineage
graph, drawn on the server so a page needs no script, no CDN and no second request.

matplotlib (which draws the static HTML guard report) takes about 100 ms a figure; a page here has
up to three and must render in under 300 ms, so these are plain SVG strings. Every value is also
in the page's tables; each chart has a ``<title>`` for screen readers.

>>> svg = line_chart({"candidate": [(1, 40.0), (10, 75.0)]}, x_label="k", y_label="recall@k")
>>> svg.startswith("<svg")
True
"""

from __future__ import annotations

import datetime as _dt
import math
from html import escape

from markupsafe import Markup

PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")
ACTION_COLOURS = {"promote": "#228833", "rollback": "#ee6677", "canary": "#ccbb44", "set": "#4477aa"}
_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 560, 220, 48, 34, 12, 12


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _frame(body: list[str], title: str, x_label: str, y_label: str, width: int = _W, height: int = _H) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle" class="axis">{escape(x_label)}</text>'
        f'<text x="12" y="{height / 2}" text-anchor="middle" class="axis" transform="rotate(-90 12 {height / 2})">'
        f"{escape(y_label)}</text>" + "".join(body) + "</svg>")


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axes(xs: tuple[float, float], ys: tuple[float, float], x_ticks: list[tuple[float, str]],
          width: int = _W, height: int = _H) -> tuple[list[str], object, object]:
    sx = _scale(xs[0], xs[1], _PAD_L, width - _PAD_R)
    sy = _scale(ys[0], ys[1], height - _PAD_B, _PAD_T)
    body = [f'<line x1="{_PAD_L}" y1="{height - _PAD_B}" x2="{width - _PAD_R}" y2="{height - _PAD_B}" class="grid"/>']
    for v in (ys[0], (ys[0] + ys[1]) / 2, ys[1]):
        y = sy(v)
        body.append(f'<line x1="{_PAD_L}" y1="{y:.1f}" x2="{width - _PAD_R}" y2="{y:.1f}" class="grid faint"/>'
                    f'<text x="{_PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(v)}</text>')
    for v, label in x_ticks:
        body.append(f'<text x="{sx(v):.1f}" y="{height - _PAD_B + 14}" text-anchor="middle" class="tick">'
                    f"{escape(label)}</text>")
    return body, sx, sy


def _legend(names: list[str], width: int = _W) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = width - _PAD_R - 130
        y = _PAD_T + 12 + 14 * i
        out.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{x + 14}" y="{y + 1}" class="tick">{escape(name)}</text>')
    return out


def line_chart(series: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str,
               log_x: bool = False, title: str | None = None, x_labels: dict[float, str] | None = None) -> Markup:
    """One line per series of (x, y) points; ``log_x`` for a k axis. ``x_labels`` names x ticks."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return Markup("")
    fx = (lambda v: math.log10(max(v, 1e-9))) if log_x else (lambda v: float(v))
    xs = (min(fx(x) for x, _ in pts), max(fx(x) for x, _ in pts))
    lo, hi = min(y for _, y in pts), max(y for _, y in pts)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    ticks = sorted({x for x, _ in pts})
    if len(ticks) > 8:
        step = max(1, len(ticks) // 6)
        ticks = ticks[::step]
    tick_labels = [(fx(x), (x_labels or {}).get(x, _fmt(x))) for x in ticks]
    body, sx, sy = _axes(xs, (lo - pad, hi + pad), tick_labels)
    for i, (name, s) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(fx(x)):.1f},{sy(y):.1f}" for x, y in s)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [f'<circle cx="{sx(fx(x)):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}">'
                 f"<title>{escape(name)}: {_fmt(x)} -> {_fmt(y)}</title></circle>" for x, y in s]
    if len(series) > 1:
        body += _legend(list(series))
    return _frame(body, title or f"{y_label} by {x_label}", x_label, y_label)


def bar_chart(labels: list[str], groups: dict[str, list[float]], *, y_label: str, title: str | None = None) -> Markup:
    """Grouped bars: one group per label, one bar per series in ``groups``."""
    values = [v for vs in groups.values() for v in vs]
    if not labels or not values:
        return Markup("")
    lo = min(0.0, min(values))
    hi = max(values) * 1.1 or 1.0
    body, _, sy = _axes((0, len(labels)), (lo, hi), [(i + 0.5, label[:24]) for i, label in enumerate(labels)])
    slot = (_W - _PAD_L - _PAD_R) / len(labels)
    bar = slot * 0.8 / len(groups)
    for j, (name, vs) in enumerate(groups.items()):
        for i, v in enumerate(vs):
            x = _PAD_L + i * slot + slot * 0.1 + j * bar
            y0, y1 = sy(max(v, 0)), sy(min(v, 0))
            body.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar:.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                        f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(name)} {escape(labels[i])}: {_fmt(v)}'
                        f"</title></rect>")
    body += _legend(list(groups))
    return _frame(body, title or y_label, "", y_label)


def histogram(values: list[float], *, x_label: str, bins: int = 30, title: str | None = None) -> Markup:
    """Counts of ``values`` in ``bins`` equal bins, with a line at zero."""
    if not values:
        return Markup("")
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    ticks = [(lo, _fmt(lo)), ((lo + hi) / 2, _fmt((lo + hi) / 2)), (hi, _fmt(hi))]
    body, sx, sy = _axes((lo, hi), (0, max(counts)), ticks)
    for i, c in enumerate(counts):
        x0, x1 = sx(lo + i * width), sx(lo + (i + 1) * width)
        body.append(f'<rect x="{x0:.1f}" y="{sy(c):.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
                    f'height="{sy(0) - sy(c):.1f}" fill="{PALETTE[0]}"><title>{_fmt(lo + i * width)} to '
                    f"{_fmt(lo + (i + 1) * width)}: {c}</title></rect>")
    if lo < 0 < hi:
        body.append(f'<line x1="{sx(0):.1f}" y1="{_PAD_T}" x2="{sx(0):.1f}" y2="{_H - _PAD_B}" stroke="black"/>')
    return _frame(body, title or f"histogram of {x_label}", x_label, "queries")


def _when(ts: str) -> float:
    return _dt.datetime.fromisoformat(ts).timestamp()


def time_axis(events: list[tuple[str, str, str]], *, title: str) -> Markup:
    """Events ``(ts, action, label)`` as dots on a time line, one lane per action (drawn 1,000 wide:
    it spans a page, not a grid cell)."""
    if not events:
        return Markup("")
    width = 1000
    lanes = sorted({a for _, a, _ in events}, key=lambda a: list(ACTION_COLOURS).index(a) if a in ACTION_COLOURS else 9)
    height = _PAD_T + _PAD_B + 26 * len(lanes)
    t0, t1 = _when(events[0][0]), _when(events[-1][0])
    first, last = events[0][0][:16].replace("T", " "), events[-1][0][:16].replace("T", " ")
    sx = _scale(t0, t1 if t1 > t0 else t0 + 1, _PAD_L + 60, width - _PAD_R - 10)
    body = [f'<text x="{_PAD_L + 60}" y="{height - 14}" class="tick">{escape(first)}</text>',
            f'<text x="{width - _PAD_R}" y="{height - 14}" text-anchor="end" class="tick">{escape(last)}</text>']
    for i, lane in enumerate(lanes):
        y = _PAD_T + 13 + 26 * i
        body.append(f'<text x="{_PAD_L + 52}" y="{y + 4}" text-anchor="end" class="tick">{escape(lane)}</text>'
                    f'<line x1="{_PAD_L + 60}" y1="{y}" x2="{width - _PAD_R}" y2="{y}" class="grid faint"/>')
    for ts, action, label in events:
        y = _PAD_T + 13 + 26 * lanes.index(action)
        body.append(f'<circle cx="{sx(_when(ts)):.1f}" cy="{y}" r="5" fill="{ACTION_COLOURS.get(action, "#888")}">'
                    f"<title>{escape(ts[:19])} {escape(label)}</title></circle>")
    return _frame(body, title, "", "", width=width, height=height)


def lineage_graph(nodes: list[tuple[str, int, int, str | None, str]], *, href: str = "/ui/models/") -> Markup:
    """Model versions ``(ref, depth, row, parent_ref, kind)`` as boxes left to right by depth, with a
    line from each parent; each box links to its model's page."""
    if not nodes:
        return Markup("")
    box_w, box_h, gap_x, gap_y = 150, 34, 40, 14
    depth = max(d for _, d, _, _, _ in nodes) + 1
    rows = max(r for _, _, r, _, _ in nodes) + 1
    width, height = depth * (box_w + gap_x) + 10, rows * (box_h + gap_y) + 10
    at = {ref: (5 + d * (box_w + gap_x), 5 + r * (box_h + gap_y)) for ref, d, r, _, _ in nodes}
    colours = {"base": "#dde6f2", "fine-tuned": "#d9f0dc", "interpolated": "#f6edc8"}
    body = []
    for ref, _, _, parent, _ in nodes:
        if parent in at:
            (px, py), (x, y) = at[parent], at[ref]
            body.append(f'<line x1="{px + box_w}" y1="{py + box_h / 2}" x2="{x}" y2="{y + box_h / 2}" class="edge"/>')
    for ref, _, _, _, kind in nodes:
        x, y = at[ref]
        body.append(f'<a href="{escape(href + ref)}"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="4" '
                    f'fill="{colours.get(kind, "#eee")}" stroke="#667"/><text x="{x + 8}" y="{y + 14}" class="node">'
                    f'{escape(ref)}</text><text x="{x + 8}" y="{y + 27}" class="tick">{escape(kind)}</text></a>')
    return Markup(f'<svg class="lineage" viewBox="0 0 {width} {height}" width="{width}" role="img" '
                  f'xmlns="http://www.w3.org/2000/svg"><title>model lineage</title>{"".join(body)}</svg>')
