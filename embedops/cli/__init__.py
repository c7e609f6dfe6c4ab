"""The ``embedops`` command line: a thin layer over the library API, one module per command group.

Each command parses its options, calls one library function (mostly in :mod:`embedops.app` or
:mod:`embedops.registry`) and renders the result. Every command can be run in-process with
``typer.testing.CliRunner`` against ``embedops.cli.app``. Exit codes: 0 success; 1 failure; 2 bad
input or usage (nothing was written); 3 conflict (a compare-and-swap lost to another writer, or a
lock held by another build).
"""

from __future__ import annotations

from embedops.cli import adapters, aliases, canary, corpus, guards, indexes, init, models, pairs, pipeline, serve, status, train  # noqa: F401
from embedops.cli._common import app, flags_show_no_type, reflow_help, usage_errors_on_one_line

# Importing a module registers its commands on ``app``; --help lists them in the order of the lifecycle.
_ORDER = ("init", "search", "promote", "guard", "rollback", "train", "serve", "demo", "history", "status")
app.registered_commands.sort(key=lambda c: _ORDER.index(c.name))

app.add_typer(guards.shadow_app, name="shadow")
app.add_typer(canary.canary_app, name="canary")
app.add_typer(corpus.corpus_app, name="corpus")
app.add_typer(models.model_app, name="model")
app.add_typer(pairs.pairs_app, name="pairs")
app.add_typer(pipeline.pipeline_app, name="pipeline")
app.add_typer(aliases.alias_app, name="alias")
app.add_typer(adapters.adapter_app, name="adapter")
app.add_typer(indexes.index_app, name="index")
flags_show_no_type()  # --json, not --json <bool>
usage_errors_on_one_line()  # error: Invalid value for '-k': ... (see: embedops search --help)
reflow_help(app)  # --help paragraphs wrap to the terminal; Example lines stay lines of their own

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="embedops")
