"""embedops canary start | status | promote | abort"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from embedops.app.live import live_summary
from embedops.app.promotion import promote_canary, start_canary
from embedops.cli._common import (JsonOpt, group, handle_errors, make_table, out, print_json, slice_agreement_table,
                                  state, when)
from embedops.errors import UsageError

canary_app = group(
    "Canary splits: a candidate index answers a share of an alias's searches.\n\n"
    "Routing is sticky by client; every 'embedops serve' on the store follows the split.\n\n"
    "Example:  embedops canary start scifact--minilm-v2--1a2b3c4d --percent 10"
)

AliasOpt = typer.Option("production", "--alias", "-a", help="The alias whose traffic is split.")


@canary_app.command("start")
@handle_errors
def canary_start(
    ctx: typer.Context,
    index_id: str = typer.Argument(..., help="Ready index (or a bridge's adapter id) to answer a share of the searches."),
    alias: str = AliasOpt,
    percent: float = typer.Option(10.0, "--percent", "-p", help="Share of searches, more than 0 and less than 100 (again on a running canary: change it)."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Guard policy file (default ./embedops.toml or built-in defaults)."),
    gold: Optional[Path] = typer.Option(None, "--gold", help="Also require that the report was run on this gold set."),
    general: list[Path] = typer.Option([], "--general", help="Also require that the report was run on this general benchmark (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Start without an authorising guard report: an override, recorded in the audit log."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded); required with --force."),
):
    """Let an index answer a share of an alias's searches, beside the index the alias points at.

    Refused, as a promotion is, unless a passing guard report authorises promoting this index to
    the alias now (or '--force --reason', recorded). Clients stay on their side: routing is sticky by
    the X-Embedops-Client header or a request's 'client' field, else by the query text. A server's
    [serve.rollback] policy aborts the canary by itself when its errors, latency or agreement with the
    stable index cross the limits.

    Example:  embedops canary start scifact--minilm-v2--1a2b3c4d --percent 10
    """
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (it is recorded in the audit log)")
    s = start_canary(state(ctx).registry, index_id, alias, percent, policy_file=policy_file, gold=gold,
                     general=list(general), force=force, reason=reason)
    how = f"guard report {s.canary.report_id}" if s.canary.report_id else "OVERRIDE without a guard report, recorded"
    out.print(f"{alias}: canary [bold]{s.canary.index_id}[/] answers {s.canary.percent:g}% of searches beside "
              f"{s.value} ({how})")


@canary_app.command("status")
@handle_errors
def canary_status(ctx: typer.Context, alias: str = AliasOpt, as_json: bool = JsonOpt):
    """Where an alias's traffic goes, and how its canary compares with the stable index.

    The comparison is over the live queries servers mirrored since the canary started, also per
    gold slice when the canary's guard report kept its slices (each query in the nearest slice).

    Example:  embedops canary status --alias production
    """
    reg = state(ctx).registry
    s = reg.aliases.get(alias)
    if s is None:
        raise UsageError(f"alias {alias!r} is not set")
    live = None
    if s.canary:
        started = next((h.ts for h in reversed(reg.aliases.history(alias)) if h.action == "canary.start"), s.ts)
        live = live_summary(reg, since=started, alias=alias, kind="canary")
    last = reg.aliases.history(alias)[-1]
    if as_json:
        print_json({"alias": s.to_dict(), "live": live.to_dict() if live else None})
        return
    if s.canary is None:
        out.print(f"{alias} -> [bold]{s.value}[/]: no canary")
        if last.action == "canary.abort":
            out.print(f"last canary ended {when(last.ts)} by {last.actor}: {last.reason or '-'}")
        return
    how = f"report {s.canary.report_id}" if s.canary.report_id else "[bold red]OVERRIDE[/]"
    t = make_table("route", "index", "share", title=f"alias {alias} (since {when(s.ts)} by {s.actor}; {how})")
    t.add_row("stable", s.value, f"{100 - s.canary.percent:g}%")
    t.add_row("canary", s.canary.index_id, f"{s.canary.percent:g}%")
    out.print(t)
    pair = next((p for p in live.pairs if p.primary_index == s.canary.index_id), None) if live else None
    if pair is None:
        out.print("[dim]no mirrored canary queries recorded yet[/]")
    else:
        out.print(f"{pair.queries} mirrored queries: overlap@k {pair.overlap:.3f}, tau {pair.rank_correlation:.3f}, "
                  f"p95 {pair.primary_ms['p95']:.1f} ms canary vs {pair.other_ms['p95']:.1f} ms stable")
        slices = slice_agreement_table(pair)
        if slices is not None:
            out.print(slices)


@canary_app.command("promote")
@handle_errors
def canary_promote(
    ctx: typer.Context,
    alias: str = AliasOpt,
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Guard policy file (default ./embedops.toml or built-in defaults)."),
    force: bool = typer.Option(False, "--force", help="Promote without an authorising guard report (an audited override)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded); required with --force."),
):
    """Give the canary all of the alias's traffic: a guarded promotion of the canary index.

    Refused unless a passing report authorises it (the one that allowed the canary still does).

    Example:  embedops canary promote --alias production
    """
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (it is recorded in the audit log)")
    s = promote_canary(state(ctx).registry, alias, policy_file=policy_file, force=force, reason=reason)
    out.print(f"{alias} -> [bold]{s.value}[/] (was {s.previous or '-'})"
              + (f"; guard report {s.report_id}" if s.report_id else "; OVERRIDE without a guard report, recorded"))


@canary_app.command("abort")
@handle_errors
def canary_abort(
    ctx: typer.Context,
    alias: str = AliasOpt,
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (recorded)."),
):
    """End the canary: all of the alias's traffic goes back to its index.

    Never refused for want of a report, like a rollback.

    Example:  embedops canary abort --reason "p95 doubled for long queries"
    """
    reg = state(ctx).registry
    s = reg.abort_canary(alias, reason=reason)
    out.print(f"{alias} -> [bold]{s.value}[/]: canary aborted")
