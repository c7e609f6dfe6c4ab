"""The ``embedops`` command line: a thin layer over the library API.

Every command can be run in-process with ``typer.testing.CliRunner`` against ``embedops.cli.app``.
Exit codes: 0 success; 1 failure; 2 bad input or usage (nothing was written); 3 conflict (a
compare-and-swap lost to another writer).
"""

from __future__ import annotations

import functools
import json
import sys
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
app.add_typer(alias_app, name="alias")

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
    table = Table("corpus", "documents", "version", title="Corpora")
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
    table = Table("ref", "parent", "created", "creator", "files", "digest", title="Model versions")
    for m in models:
        table.add_row(m.ref, m.parent or "-", m.created_at[:19], m.creator, str(len(m.files)), m.digest[:12])
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
    table = Table(show_header=False, title=m.ref)
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
    out.print(f"{name} -> [bold]{s.value}[/] (since {s.ts[:19]} by {s.actor}; previous {s.previous or '-'})")


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
    table = Table("#", "when", "action", "value", "previous", "who", "why", title=f"alias {name}")
    for s in hist:
        table.add_row(str(s.seq), s.ts[:19], s.action, s.value or "-", s.previous or "-", s.actor, s.reason or "")
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
    table = Table("alias", "index", "previous", "since", title="Aliases")
    for a in aliases:
        table.add_row(a.name, a.value or "-", a.previous or "-", a.ts[:19])
    out.print(table if aliases else "no aliases yet")


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
    events = state(ctx).registry.history(limit or None)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table = Table("when", "who", "action", "subject", "why", title="History")
    for e in events:
        table.add_row(e.ts[:19], e.actor, e.action, e.subject, e.reason or "")
    out.print(table if events else "no events yet")


@app.command("status")
@handle_errors
def status(ctx: typer.Context, as_json: bool = JsonOpt):
    """One screen: aliases, corpora, models, indexes and the latest guard verdicts.

    Example:  embedops status
    """
    reg = state(ctx).registry
    aliases, corpora = reg.aliases.list(), reg.corpora.list()
    models, indexes = reg.models.list(), reg.indexes.list()
    verdicts = _latest_verdicts(reg)
    if as_json:
        print_json({
            "store": str(reg.store.root), "aliases": [a.to_dict() for a in aliases],
            "corpora": [c.__dict__ for c in corpora], "models": [m.to_dict() for m in models],
            "indexes": [i.to_dict() for i in indexes], "verdicts": verdicts,
        })
        return
    out.print(f"[bold]store[/] {reg.store.root}")
    t = Table("alias", "index", "model", "previous", "since", title="Aliases")
    by_id = {i.index_id: i for i in indexes}
    for a in aliases:
        idx = by_id.get(a.value or "")
        t.add_row(a.name, a.value or "-", idx.model_ref if idx else "-", a.previous or "-", a.ts[:19])
    out.print(t)
    t = Table("corpus", "documents", "version", title="Corpora")
    for c in corpora:
        t.add_row(c.name, str(c.documents), str(c.version))
    out.print(t)
    t = Table("ref", "parent", "created", "digest", title="Models")
    for m in models:
        t.add_row(m.ref, m.parent or "-", m.created_at[:19], m.digest[:12])
    out.print(t)
    t = Table("index", "model", "corpus", "status", "docs", "updated", title="Indexes")
    for i in indexes:
        t.add_row(i.index_id, i.model_ref, i.corpus, i.status.value, str(i.doc_count or "-"), i.updated_at[:19])
    out.print(t)
    t = Table("index", "verdict", "when", title="Latest guard verdicts")
    for v in verdicts:
        t.add_row(v["index_id"], v["verdict"], v["ts"][:19])
    out.print(t if verdicts else "[dim]no guard verdicts yet[/]")


def _latest_verdicts(reg) -> list[dict[str, Any]]:
    """Latest verdict per index, from 'guard.*' audit events (written by the guards stage)."""
    latest: dict[str, dict[str, Any]] = {}
    for e in reg.audit.events():
        if e.action.startswith("guard."):
            latest[e.subject] = {"index_id": e.subject, "verdict": e.action.split(".", 1)[1], "ts": e.ts}
    return list(latest.values())


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="embedops")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
