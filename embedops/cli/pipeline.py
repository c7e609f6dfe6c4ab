"""embedops pipeline run, embedops demo"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from embedops.app.demo import run_demo
from embedops.app.pipeline import Pipeline, PipelineConfig, PipelineReport
from embedops.cli._common import JsonOpt, app, err, group, handle_errors, make_table, out, print_json, state

pipeline_app = group("The main job from one config file.\n\nExample:  embedops pipeline run examples/pipeline-scifact.toml")

class _StageProgress:
    """Each stage's line as it starts and ends, and a progress bar with an ETA for the long ones
    (index builds, mining, training) while they run (rich; shown on a terminal, left out of logs)."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.t0 = time.perf_counter()
        self.progress = Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                                 transient=True)
        self.tasks: dict[str, int] = {}

    def on_stage(self, name: str, status: str) -> None:
        if name in self.tasks and status != "running":
            self.progress.remove_task(self.tasks.pop(name))
            if not self.tasks:
                self.progress.stop()
        self.progress.console.print(f"[dim]{time.perf_counter() - self.t0:7.1f}s[/] [bold]{name:<10}[/] {status}")

    def on_progress(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            if not self.tasks:
                self.progress.start()
            self.tasks[name] = self.progress.add_task(name, total=total)
        self.progress.update(self.tasks[name], completed=done, total=total)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.progress.stop()


def _cell(value: str | int | float) -> str:
    """A stage output as shown: floats to 4 significant digits (0.525, not 0.5249999999999999)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_pipeline(report: PipelineReport) -> None:
    """One row a stage: its scalar outputs in full (cells wrap, nothing is cut), seconds, cache key."""
    t = make_table("stage", "result", "s", "key", title="pipeline run")
    for s in report.stages:
        summary = ", ".join(f"{k}={_cell(v)}" for k, v in s.outputs.items()
                            if isinstance(v, (str, int, float)) and k != "file")
        t.add_row(s.name, "cached" if s.cached else summary, f"{s.seconds:.1f}", s.key)
    out.print(t)


def _print_refusals(report: PipelineReport) -> None:
    """Why the guards refused: each failing gate's reason in full (what the user acts on)."""
    guards = next((s for s in report.stages if s.name == "guards"), None)
    for gate in (guards.outputs.get("gates", []) if guards else []):
        if gate.get("status") == "fail":
            out.print(f"refused by [bold]{gate['name']}[/]: {gate.get('reason', '')}")


@pipeline_app.command("run")
@handle_errors
def pipeline_run(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Pipeline config (TOML); see examples/pipeline-scifact.toml."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write the machine-readable run report (JSON) here."),
    as_json: bool = JsonOpt,
):
    """Run pairs -> mine -> train -> export -> index -> guards -> shadow -> promote from one config.

    Promotes only when every gate passes; otherwise stops with the verdict and leaves production
    untouched (exit 1). Stage outputs are content-addressed: a rerun redoes only what changed.

    Example:  embedops pipeline run examples/pipeline-scifact.toml --report run.json
    """
    config = PipelineConfig.from_toml(config_path)
    with _StageProgress() as shown:
        state(ctx).create = True  # a pipeline run sets a store up from its config, on purpose
        report = Pipeline(state(ctx).registry, config, on_stage=shown.on_stage, on_progress=shown.on_progress).run()
    data = report.to_dict()
    if report_path:
        report_path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    if as_json:
        print_json(data)
    else:
        _print_pipeline(report)
        _print_refusals(report)
        out.print(f"verdict [bold]{report.verdict}[/]; " + (f"promoted {report.candidate_index}" if report.promoted
                                                             else "production untouched"))
    if not report.promoted:
        raise typer.Exit(1)


@app.command("demo")
@handle_errors
def demo(
    store: Path = typer.Option(Path("./embedops-demo"), "--store", "-s", help="Demo store (recreated; only an earlier demo store is ever wiped)."),
    domain: Optional[Path] = typer.Option(None, "--domain", help="Run on a real BEIR directory instead of the demo domain."),
    general: list[Path] = typer.Option([], "--general", help="General benchmark(s): BEIR directory or STS TSV."),
    as_json: bool = JsonOpt,
):
    """The whole lifecycle offline in a few minutes, with a before/after summary.

    Base model -> fine-tuned, guarded, promoted, rolled back and re-promoted.

    Example:  embedops demo
    Example:  embedops demo --domain ../shared/data/scifact --general ../shared/data/general-stsb/sts-test.tsv
    """
    t0 = time.perf_counter()
    with _StageProgress() as shown:
        s = run_demo(store, domain=domain, general=list(general), on_stage=shown.on_stage, on_progress=shown.on_progress)
    total = time.perf_counter() - t0
    if as_json:
        print_json({"store": str(s.store), "report": s.report.to_dict(), "before": s.before, "after": s.after,
                    "general": s.general, "rollback_ms": s.rollback_ms, "repromote_ms": s.repromote_ms, "seconds": total})
        return
    _print_pipeline(s.report)
    _print_refusals(s.report)
    t = make_table("held-out retrieval", "base model", "fine-tuned", "change", title="before / after")
    for m in ("ndcg@10", "recall@10", "mrr@10"):
        if m in s.before and m in s.after:
            t.add_row(m, f"{s.before[m]:.1f}", f"{s.after[m]:.1f}", f"{s.after[m] - s.before[m]:+.1f}")
    for g in s.general:
        t.add_row(f"general {Path(g['benchmark']).name} ({g['metric']})", f"{g['base']:.1f}", f"{g['candidate']:.1f}",
                  f"{g['candidate'] - g['base']:+.1f}")
    out.print(t)
    out.print(f"[dim]{s.general_note}[/]")
    out.print(f"verdict [bold]{s.report.verdict}[/]; " + (
        f"promoted, rolled back in {s.rollback_ms:.0f} ms, re-promoted in {s.repromote_ms:.0f} ms" if s.report.promoted
        else "not promoted: production untouched") + f"; {total:.0f}s in all")
    example = "the main database is down" if domain is None else "your question here"
    out.print(f"next:  embedops --store {s.store} status   |   embedops --store {s.store} search \"{example}\""
              f"   |   open {s.store}/pipeline/guards/*/report/report.html"
              f"   |   serve it over HTTP: embedops --store {s.store} serve --port 8000")
