"""embedops status, embedops history"""

from __future__ import annotations

import typer

from embedops.app.status import store_status
from embedops.cli._common import JsonOpt, app, err, handle_errors, make_table, out, print_json, state, when
from embedops.registry import AliasState


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
    table = make_table("when", "who", "action", "subject", "why", title="History")
    # Every column but "why" has a width cap (rich folds capped columns; an uncapped one is as wide as
    # its longest word), and "why" takes the rest: the table fits the terminal, 80 columns included.
    for column, width in zip(table.columns[1:4], (12, len("alias.canary.abort"), 14)):
        column.max_width = width
    table.columns[2].min_width = len("alias.canary.abort")
    table.columns[4].max_width = max(10, out.width - 16 - 10 - 12 - 18 - 14)
    for e in events:
        action = e.action + (" [bold red](OVERRIDE)[/]" if e.details.get("override") else "") \
            + (" [bold yellow](AUTOMATIC)[/]" if e.details.get("automatic") else "")
        table.add_row(when(e.ts), e.actor, action, e.subject, e.reason or "")
    out.print(table if events else "no events yet")
    _print_overrides(reg.overridden_aliases())


def _print_overrides(overrides: list[AliasState]) -> None:
    for a in overrides:
        what = (f"{a.name}: canary {a.canary.index_id} was started" if a.action.startswith("canary") and a.canary
                else f"{a.name} -> {a.value} was promoted")
        err.print(f"[bold yellow]warning:[/] {what} WITHOUT a passing guard report "
                  f"(override by {a.actor} at {when(a.ts)}: {a.reason})")


@app.command("status")
@handle_errors
def status(ctx: typer.Context, as_json: bool = JsonOpt):
    """One screen: aliases, corpora, models, indexes and the latest guard verdicts.

    Example:  embedops status
    """
    s = store_status(state(ctx).registry)
    if as_json:
        print_json(s.to_dict())
        return
    out.print(f"[bold]store[/] {s.location}")
    t = make_table("alias", "index", "model", "was", "since", "by", title="Aliases")
    for a in s.aliases:
        idx = s.index(a.value)
        how = ("[bold red]OVERRIDE[/]" if a.override else f"report {a.report_id}" if a.report_id else a.action)
        value = a.value or "-"
        if idx is not None and idx.bridge is not None:  # a bridge: the new model over the old index
            value += f"\n= {idx.bridge.kind} adapter over {idx.bridge.index_id}"
            value += _rebuild_line(s.rebuilds.get(a.name))
        elif idx is not None and idx.settings.index.footprint != "float32":  # int8, sign bits, fewer dims
            value += f"\n~ keeps {idx.settings.index.footprint} vectors"
        value += f"\n+ canary {a.canary.index_id} {a.canary.percent:g}%" if a.canary else ""
        if a.automatic:
            how = f"[bold yellow]automatic {a.action}[/]"
        t.add_row(a.name, value, idx.model_ref if idx else "-", a.previous or "-", when(a.ts), how)
    out.print(t)
    t = make_table("corpus", "documents", "version", title="Corpora")
    for c in s.corpora:
        t.add_row(c.name, str(c.documents), str(c.version))
    out.print(t)
    t = make_table("ref", "parent", "created", "digest", title="Models")
    for m in s.models:
        t.add_row(m.ref, m.parent or "-", when(m.created_at), m.digest[:12])
    out.print(t)
    t = make_table("index", "model", "corpus", "status", "docs", "updated", title="Indexes")
    for i in s.indexes:
        t.add_row(i.index_id, i.model_ref, i.corpus, i.status.value, str(i.doc_count or "-"), when(i.updated_at))
    out.print(t)
    t = make_table("index", "verdict", "when", title="Latest guard verdicts")
    for r in s.verdicts:
        t.add_row(r.index_id, r.verdict, when(r.created_at))
    out.print(t if s.verdicts else "[dim]no guard verdicts yet[/]")
    _print_overrides(s.overrides)


def _rebuild_line(plan) -> str:
    """How far a served bridge's model has re-embedded the corpus, and which space queries see."""
    if plan is None:
        return ""
    line = f"\n> rebuild {plan.new_index.index_id}\n  {plan.share:.0%} done ({plan.done:,}/{plan.total:,}): "
    if plan.active:
        return line + "progressive, those in the new space"
    if plan.start_at is None:
        return line + "plain bridge (no progressive merge measured to hold up)"
    return line + f"plain bridge until {plan.start_at:.0%}"
