"""embedops guard, embedops shadow [run] | live"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from embedops.beir import read_qrels, read_queries
from embedops.errors import UsageError
from typer.core import TyperGroup

from embedops.app.live import live_summary, parse_since
from embedops.cli._common import (JsonOpt, app, err, handle_errors, make_table, out, print_json, slice_agreement_table,
                                  state, when)
from embedops.guards import load_policy, run_guards
from embedops.guards.shadow import run_shadow
from embedops.guards.summary import evidence_line, slice_rows
from embedops.registry import Searcher


@app.command("guard")
@handle_errors
def guard(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Candidate index to judge, or a bridge's adapter id (embedops adapter fit)."),
    gold: Path = typer.Option(..., "--gold", help="Gold set: BEIR directory (queries.jsonl + qrels/test.tsv)."),
    general: list[Path] = typer.Option([], "--general", help="General benchmark: BEIR directory, STS TSV, or bundled:general-sts / bundled:general-definitions / bundled:general-retrieval (repeatable)."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias whose index the candidate must beat."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Policy file (default ./embedops.toml or built-in defaults)."),
    html_dir: Optional[Path] = typer.Option(None, "--html", help="Write report.html and PNG plots into this directory."),
    as_json: bool = JsonOpt,
):
    """Run the promotion gates for a candidate index and store the report in the registry.

    Gates: domain retrieval vs the alias's index (paired bootstrap), the same test per slice of
    queries, forgetting vs production's model and the lineage's root, ONNX parity, index integrity
    (ANN recall measured now), latency (optional). Each gate fails when its evidence is too thin
    (fewer than 50 judgeable gold queries by default, qrels naming documents the index lacks, a tiny
    or degenerate general set). A gate the policy requires (default: all but latency) fails when it
    cannot run: give --general; a first promotion (nothing behind the alias) needs --force.
    The report binds the index, model, policy, gold and general sets and the alias's current index.
    Exit 0 when every gate passes, 1 when any fails, 2 for usage or input errors.

    Example:  embedops guard scifact--minilm-v2--1a2b3c4d --gold ../shared/data/scifact --general ../shared/data/general-stsb/sts-test.tsv --html guard-report
    Example:  embedops guard INDEX_ID --gold my-beir/ --general bundled:general-sts --general bundled:general-definitions
    """
    policy = load_policy(policy_file)
    with err.status(f"running guards on {index_id} ..."):
        report = run_guards(state(ctx).registry, index_id, gold=gold, general=list(general), policy=policy,
                            alias=alias, html_dir=html_dir)
    if as_json:
        print_json(report.to_dict())
    else:
        colour = {"pass": "green", "fail": "red", "warn": "yellow", "skip": "dim"}
        t = make_table("gate", "status", "value", "threshold", "reason", title=f"guards for {index_id}: {report.verdict.upper()}")
        for g in report.gates:
            value = "" if g.value is None else (f"{g.value:.4g}" if isinstance(g.value, float) else str(g.value))
            t.add_row(g.name, f"[{colour[g.status]}]{g.status}[/]", value, "" if g.threshold is None else str(g.threshold), g.reason)
        out.print(t)
        for g in report.gates:
            line = evidence_line(g.to_dict())
            if line:
                out.print(f"evidence, {g.name}: {line}")
        rows = slice_rows(next((g.to_dict() for g in report.gates if g.name == "slices"), {}))
        if rows:
            s = make_table("slice", "queries", "change", "interval", title="per slice (points)")
            for r in rows:
                s.add_row(r["slice"], str(r["size"]), f"{r['mean']:+.2f}",
                          f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if r["judged"] else "too small")
            out.print(s)
        lost = next((g.evidence.get("lost_most") for g in report.gates if g.name == "domain"), None)
        if lost:
            out.print("queries that lost most: " + "; ".join(f"{x['query'][:50]} ({x['delta']:+.1f})" for x in lost))
        out.print(f"report {report.stored.report_id} stored" + (f"; HTML: {report.html}" if report.html else ""))
    if report.verdict != "pass":
        raise typer.Exit(1)


class _RunByDefault(TyperGroup):
    """``embedops shadow INDEX_ID ...`` is ``embedops shadow run INDEX_ID ...``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


shadow_app = typer.Typer(
    cls=_RunByDefault, no_args_is_help=True,
    help="Compare a candidate with an alias's index, on a query file or on live traffic.\n\n"
         "'shadow run' (the default) runs a query file on both; 'shadow live' shows what servers recorded "
         "when they mirrored live queries.\n\n"
         "Example:  embedops shadow INDEX_ID --queries q.jsonl --qrels qrels/test.tsv\n\n"
         "Example:  embedops shadow live --since 1h",
)


@shadow_app.command("run")
@handle_errors
def shadow(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Candidate index, or a bridge's adapter id."),
    queries: Path = typer.Option(..., "--queries", help="queries.jsonl (BEIR) or JSONL of {_id|id, text}."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="BEIR qrels TSV, for recall and nDCG."),
    k: int = typer.Option(10, "-k"),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias to compare against."),
    as_json: bool = JsonOpt,
):
    """Run a query file on an alias's index and a candidate; compare them side by side.

    'run' may be left out: 'embedops shadow INDEX_ID ...' is the same command.

    Example:  embedops shadow scifact--minilm-v2--1a2b3c4d --queries q.jsonl --qrels qrels/test.tsv
    """
    judged = read_qrels(qrels) if qrels else None
    qs = read_queries(queries, only=set(judged) if judged else None)
    with err.status(f"running {len(qs)} queries on both indexes ..."):
        report = run_shadow(Searcher(state(ctx).registry), index_id, qs, qrels=judged, k=k, alias=alias)
    if as_json:
        print_json(report.to_dict())
        return
    t = make_table("", f"{alias}: {report.production}", f"candidate: {report.candidate}", title=f"shadow over {report.queries} queries")
    for name in sorted(report.metrics.get("production", {})):
        p, c = report.metrics["production"][name], report.metrics["candidate"][name]
        t.add_row(name, f"{p:.2f}", f"{c:.2f} ({c - p:+.2f})")
    for q in ("p50", "p95"):
        t.add_row(f"latency {q} ms", f"{report.latency_ms['production'][q]:.1f}", f"{report.latency_ms['candidate'][q]:.1f}")
    out.print(t)
    out.print(f"overlap@{k}: {report.overlap_at_k:.3f}   rank correlation (Kendall tau): {report.rank_correlation:.3f}")
    m = make_table(*report.movers[0].keys(), title="biggest movers") if report.movers else None
    for row in report.movers:
        m.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v)[:60] for v in row.values()])
    if m:
        out.print(m)


@shadow_app.command("live")
@handle_errors
def shadow_live(
    ctx: typer.Context,
    since: str = typer.Option("1h", "--since", help="Look back this far (30s, 10m, 2h, 7d) or from a UTC timestamp."),
    alias: Optional[str] = typer.Option(None, "--alias", "-a", help="Only queries served for this alias."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only shadow, canary or previous comparisons."),
    worst: int = typer.Option(5, "--worst", "-n", min=0, help="Show this many biggest disagreements."),
    as_json: bool = JsonOpt,
):
    """The running comparison of live queries that servers mirrored to a second index.

    Kinds: shadow (serve --shadow-alias), canary (a canary's queries run again on the stable
    index), previous (production's queries after a promotion run again on the index it replaced).

    Per pair of indexes: queries, mean overlap@k, rank correlation (Kendall's tau) and p95 latency of
    both sides; the same per gold slice when a guard report of the judged index kept its slices
    (each query in the nearest slice); then the queries on which they disagreed most.

    Example:  embedops shadow live --since 1h --kind shadow
    """
    if kind is not None and kind not in ("shadow", "canary", "previous"):
        raise UsageError(f"--kind {kind!r}: choose shadow, canary or previous")
    summary = live_summary(state(ctx).registry, since=parse_since(since), alias=alias, kind=kind, worst=worst)
    if as_json:
        print_json(summary.to_dict())
        return
    if not summary.pairs:
        out.print(f"no live comparisons since {when(summary.since) if summary.since else 'ever'}; start "
                  "'embedops serve --shadow-alias shadow' (or a canary) and send it queries")
        return
    t = make_table("kind", "answered by -> mirrored to", "queries", "overlap", "tau", "p95 ms",
                   title=f"live comparisons since {when(summary.since)} UTC" if summary.since else "live comparisons")
    for p in summary.pairs:
        t.add_row(p.kind, f"{p.primary_index}\n-> {p.other_index}", str(p.queries), f"{p.overlap:.3f}",
                  f"{p.rank_correlation:.3f}", f"{p.primary_ms['p95']:.1f} / {p.other_ms['p95']:.1f}")
    out.print(t)
    for p in summary.pairs:
        slices = slice_agreement_table(p)
        if slices is not None:
            out.print(f"{p.kind} {p.primary_index} -> {p.other_index}:")
            out.print(slices)
    if summary.disagreements:
        d = make_table("overlap", "query", "answered top 1", "mirrored top 1", title="biggest disagreements")
        for r in summary.disagreements:
            d.add_row(f"{r.overlap:.2f}", r.query, r.primary_ids[0] if r.primary_ids else "-",
                      r.other_ids[0] if r.other_ids else "-")
        out.print(d)
