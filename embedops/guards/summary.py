"""Each gate's evidence in words, the same in the CLI table, the HTML report and the dashboard.

>>> evidence_line({"name": "domain", "evidence": {"judgeable_queries": 300, "gold_queries": 300,
...     "missing_judgements": 0, "relevant_judgements": 339, "half_width": 1.2, "rule": "lift"}})
'300 of 300 gold queries judgeable; 0 of 339 judgements missing; detects +/-1.20; rule: lift'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evidence_line(gate: dict[str, Any]) -> str:
    """What ``gate`` (a stored gate: name, evidence) judged, in one short line ("" when nothing to say)."""
    ev = gate.get("evidence") or {}
    name = gate.get("name")
    if name == "domain" and "judgeable_queries" in ev:
        line = (f"{ev['judgeable_queries']} of {ev['gold_queries']} gold queries judgeable; "
                f"{ev['missing_judgements']} of {ev['relevant_judgements']} judgements missing")
        if ev.get("half_width") is not None:
            line += f"; detects +/-{ev['half_width']:.2f}"
        if ev.get("rule"):
            line += f"; rule: {ev['rule']}"  # lift (a fine-tune) or non-inferiority
        return line
    if name == "slices" and "slices" in ev:
        return (f"{ev['judged']} of {len(ev['slices'])} slices judged (>= {ev['min_slice_queries']} queries); "
                f"{ev['source']}")
    if name == "forgetting" and ev.get("sizes"):
        sizes = ", ".join(f"{Path(p).name}: {n}" for p, n in ev["sizes"].items())
        refs = ", ".join(r["model"] for r in ev.get("references", []))
        return f"{sizes}; " + (f"vs {refs}" if refs else "no reference model")
    if name == "index_integrity" and "rows" in ev:
        ann = ev.get("ann")
        return f"{ev['rows']} rows" + (f"; ANN on {ann['sample']} queries" if ann else "")
    if name == "onnx_parity" and "texts" in ev:
        return f"{ev['texts']} texts"
    return ""


def slice_rows(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """The slice table of a stored slices gate: slice, size, mean, interval, judged, examples."""
    return list((gate.get("evidence") or {}).get("slices", []))
