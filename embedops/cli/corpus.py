"""embedops corpus add | list"""

from __future__ import annotations

from pathlib import Path

import typer

from embedops.cli._common import JsonOpt, QuietOpt, err, group, handle_errors, out, print_json, print_records, state

corpus_app = group("Corpora in the store.\n\nExample:  embedops corpus add scifact ../shared/data/scifact")

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
def corpus_list(ctx: typer.Context, as_json: bool = JsonOpt, quiet: bool = QuietOpt):
    """List corpora with their document counts.

    Example:  embedops corpus list --json
    """
    print_records(state(ctx).registry.corpora.list(), as_json, ("corpus", "documents", "version"),
                  lambda i: [i.name, str(i.documents), str(i.version)], title="Corpora",
                  empty="no corpora yet: embedops corpus add NAME PATH", to_dict=lambda i: i.__dict__, quiet=quiet)
