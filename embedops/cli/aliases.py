"""embedops alias show | history | list, embedops promote, embedops rollback"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from embedops.app.promotion import promote as promote_index
from embedops.cli._common import (
    JsonOpt,
    QuietOpt,
    app,
    group,
    handle_errors,
    make_table,
    out,
    print_json,
    print_records,
    state,
    when,
)
from embedops.errors import NotFoundError, UsageError

WELL_KNOWN = ("production", "shadow")  # aliases embedops itself names; unset, they show as not set

alias_app = group("Aliases such as production and shadow.\n\nExample:  embedops alias show production")

@alias_app.command("show")
@handle_errors
def alias_show(ctx: typer.Context, name: str = typer.Argument(..., help="Alias name, e.g. production."), as_json: bool = JsonOpt):
    """Show where an alias points and what it replaced.

    Example:  embedops alias show production

    production and shadow that were never set show as not set (exit 0); any other name that was
    never set is an error (exit 2).
    """
    aliases = state(ctx).registry.aliases
    s = aliases.get(name)
    if s is None and name not in WELL_KNOWN:  # a name nobody ever set is a typo, not an empty alias
        known = sorted({a.name for a in aliases.list()} | set(WELL_KNOWN))
        raise NotFoundError(f"no alias {name!r}; aliases: {', '.join(known)}")
    if as_json:
        print_json(s.to_dict() if s else {"name": name, "value": None})
        return
    if s is None:
        out.print(f"alias {name!r} is not set")
        return
    out.print(f"{name} -> [bold]{s.value}[/] (since {when(s.ts)} by {s.actor}; previous {s.previous or '-'})")
    if s.canary:
        out.print(f"  canary {s.canary.index_id} answers {s.canary.percent:g}% of searches")


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
    table = make_table("#", "when", "action, by", "index", "why", title=f"alias {name}")
    table.columns[2].min_width = len("canary.abort")
    for s in hist:
        value = (s.value or "-") + (f"\n+ canary {s.canary.index_id} {s.canary.percent:g}%" if s.canary else "") \
            + (f"\nwas {s.previous}" if s.previous else "")
        action = s.action + ("\n[bold yellow]automatic[/]" if s.automatic else "") + f"\nby {s.actor}"
        table.add_row(str(s.seq), when(s.ts), action, value, s.reason or "")
    out.print(table if hist else f"alias {name!r} has no history")


@alias_app.command("list")
@handle_errors
def alias_list(ctx: typer.Context, as_json: bool = JsonOpt, quiet: bool = QuietOpt):
    """List aliases and their targets.

    Example:  embedops alias list
    """
    print_records(state(ctx).registry.aliases.list(), as_json, ("alias", "index", "previous", "since"),
                  lambda a: [a.name, a.value or "-", a.previous or "-", when(a.ts)], title="Aliases",
                  empty="no aliases yet", quiet=quiet)


@app.command("promote")
@handle_errors
def promote(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Ready index to serve, or a bridge's adapter id."),
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
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (it is recorded in the audit log)")
    s = promote_index(state(ctx).registry, index_id, alias, policy_file=policy_file, expect=expect, gold=gold,
                      general=list(general), force=force, reason=reason)
    out.print(f"{alias} -> [bold]{s.value}[/] (was {s.previous or '-'})"
              + (f"; guard report {s.report_id}" if s.report_id else "; OVERRIDE without a guard report, recorded"))


@app.command("rollback")
@handle_errors
def rollback(
    ctx: typer.Context,
    alias: str = typer.Option("production", "--alias", "-a"),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded)."),
):
    """Point an alias back at its previous index: O(1), never needs a guard report.

    O(1) whatever the corpus size; it also ends any canary of the alias.

    Example:  embedops rollback --reason "recall dropped for short queries"
    """
    s = state(ctx).registry.rollback(alias, reason=reason)
    out.print(f"{alias} -> [bold]{s.value}[/] (rolled back from {s.previous})")
