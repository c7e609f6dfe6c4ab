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
    replace: bool = typer.Option(False, "--replace", help="Make the corpus exactly this file: documents it does not name are deleted."),
    as_json: bool = JsonOpt,
):
    """Add documents to a corpus (created on first use) or update changed ones; re-adding the same
    file changes nothing.

    Documents already in the corpus that the file does not name are kept (a second file adds to the
    first); with --replace they are deleted, so the corpus is the file. Reports how many documents were
    added, changed, deleted, kept and unchanged. Invalid input is rejected whole, naming file, line
    and field, and the store is left exactly as it was.

    Example:  embedops corpus add scifact ../shared/data/scifact
    Example:  embedops corpus add docs ./new-docs.jsonl             # adds to what is there
    Example:  embedops corpus add docs ./all-docs.jsonl --replace   # the corpus becomes the file
    """
    with err.status(f"reading {path} ..."):
        change = state(ctx).registry.corpora.add(name, path, replace=replace)
    if as_json:
        print_json(change.__dict__ | {"documents": change.documents})
        return
    out.print(
        f"corpus [bold]{name}[/]: {change.added} added, {change.changed} changed, {change.deleted} deleted, "
        f"{change.unchanged} unchanged" + (f", {change.kept} kept (not in this file)" if change.kept else "")
        + f" ({change.documents} documents, table version {change.version})"
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
