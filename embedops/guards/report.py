"""Guard report output: the HTML report with plots (matplotlib, PNG files beside it and embedded
as base64 so the HTML is self-contained and opens with no network)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from embedops.guards.summary import evidence_line


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(evidence: dict[str, Any]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    deltas = evidence.get("per_query_delta")
    if deltas:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.hist(list(deltas.values()), bins=30, color="#4477aa")
        ax.axvline(0, color="black", lw=1)
        ax.set_xlabel(f"per-query {evidence.get('metric', 'metric')} change (points), candidate - production")
        ax.set_ylabel("queries")
        out["delta_histogram.png"] = _png(fig)
        plt.close(fig)
    curves = evidence.get("recall_curves")
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for side, curve in curves.items():
            ks = sorted(int(k) for k in curve)
            ax.plot(ks, [curve[k] if k in curve else curve[str(k)] for k in ks], marker="o", label=side)
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel("recall@k (%)")
        ax.legend()
        out["recall_at_k.png"] = _png(fig)
        plt.close(fig)
    general = [r for r in evidence.get("general") or [] if r.get("base") is not None]
    if general:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        names = [f"{Path(r['benchmark']).name}\nvs {r['reference']}" if r.get("reference") else Path(r["benchmark"]).name
                 for r in general]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [r["base"] for r in general], width=0.4, label="reference")
        ax.bar([i + 0.2 for i in x], [r["candidate"] for r in general], width=0.4, label="candidate")
        ax.set_xticks(list(x), names, rotation=15)
        ax.set_ylabel("score (points)")
        ax.legend()
        out["general_scores.png"] = _png(fig)
        plt.close(fig)
    judged = [r for r in (evidence.get("slices") or {}).get("slices", []) if r.get("judged")]
    if judged:
        fig, ax = plt.subplots(figsize=(6, 0.6 + 0.4 * len(judged)))
        y = list(range(len(judged)))
        means = [r["mean"] for r in judged]
        ax.errorbar(means, y, xerr=[[m - r["ci_low"] for m, r in zip(means, judged)],
                                    [r["ci_high"] - m for m, r in zip(means, judged)]], fmt="o", color="#4477aa")
        ax.axvline(0, color="black", lw=1)
        ax.axvline(-evidence["slices"]["slice_tolerance"], color="#cf222e", lw=1, ls="--", label="-slice_tolerance")
        ax.set_yticks(y, [f"{r['slice'][:30]} (n={r['size']})" for r in judged])
        ax.set_xlabel(f"{evidence['slices'].get('metric', 'metric')} change per slice (points), "
                      f"{evidence['slices']['confidence_each']:.1%} CI")
        ax.legend()
        out["slices.png"] = _png(fig)
        plt.close(fig)
    return out


def _slice_table(evidence: dict[str, Any]) -> str:
    slices = evidence.get("slices") or {}
    if not slices.get("slices"):
        return ""
    def interval(r):
        return f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if r.get("judged") else "not judged (too small)"
    rows = "".join(
        f"<tr><td>{html.escape(r['slice'])}</td><td>{r['size']}</td><td>{r['mean']:+.2f}</td><td>{interval(r)}</td>"
        f"<td>{html.escape('; '.join(e[:60] for e in r['examples']))}</td></tr>" for r in slices["slices"])
    return (f"<h2>Slices</h2><p>{html.escape(slices['source'])}; {html.escape(slices['correction'])}, each interval at "
            f"{slices['confidence_each']:.1%}; a slice fails below -{slices['slice_tolerance']:g}.</p>"
            f"<table><tr><th>slice</th><th>queries</th><th>mean change</th><th>interval</th><th>queries that lost most"
            f"</th></tr>{rows}</table>")


def write_html(report: dict[str, Any], evidence: dict[str, Any], dest: Path) -> Path:
    """Write ``dest/report.html`` plus the PNG plots beside it; returns the HTML path."""
    dest.mkdir(parents=True, exist_ok=True)
    images = plots(evidence)
    for name, data in images.items():
        (dest / name).write_bytes(data)
    def cell(v):
        return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    rows = "".join(
        f"<tr class='{g['status']}'><td>{html.escape(g['name'])}</td><td>{g['status'].upper()}</td>"
        f"<td>{cell(g['value'])}</td><td>{cell(g['threshold'])}</td><td>{html.escape(evidence_line(g))}</td>"
        f"<td>{html.escape(g['reason'])}</td></tr>"
        for g in report["gates"]
    )
    imgs = "".join(
        f"<figure><img alt='{n}' src='data:image/png;base64,{base64.b64encode(d).decode()}'><figcaption>{n}</figcaption></figure>"
        for n, d in images.items()
    )
    lost = "".join(f"<li>{html.escape(x['query'])} ({x['delta']:+.1f})</li>" for x in evidence.get("lost_most", []))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>embedops guard report {html.escape(report['index_id'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.3em .6em;border-bottom:1px solid #ddd}}
.pass td:nth-child(2){{color:#1a7f37}}.fail td:nth-child(2){{color:#cf222e}}.warn td:nth-child(2){{color:#9a6700}}
figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>Guard report: {report['verdict'].upper()}</h1>
<p>index <code>{html.escape(report['index_id'])}</code> (model {html.escape(report['model_ref'])}, digest
<code>{report['model_digest'][:12]}</code>, table version {report['table_version']}); policy {report['policy_hash']};
{html.escape(report['created_at'])}</p>
<table><tr><th>gate</th><th>status</th><th>value</th><th>threshold</th><th>evidence</th><th>reason</th></tr>{rows}</table>
{_slice_table(evidence)}
{f'<h2>Queries that lost most</h2><ul>{lost}</ul>' if lost else ''}
<h2>Plots</h2>{imgs}</body></html>"""
    path = dest / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
