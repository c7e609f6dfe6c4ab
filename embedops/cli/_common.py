"""What every command shares: the root app and its ``--store`` option, the consoles, error
handling (an EmbedopsError becomes a red message and its exit code), tables that fit 80 columns."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from embedops.errors import EmbedopsError, NotAStoreError
from embedops.registry import Registry
from embedops.store import STORE_ENV, Store, resolve_store_uri

app = typer.Typer(
    name="embedops",
    help="Fine-tune embedding models for your domain and ship them safely.\n\n"
    "Example:  embedops --store ./embedops-store status",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Print only the ids, one a line (for scripts: xargs, $(...)).")


def group(help: str) -> typer.Typer:
    """A command group (``embedops corpus ...``); ``help`` ends with an example."""
    return typer.Typer(help=help, no_args_is_help=True)


@dataclass
class CliState:
    store_uri: str
    create: bool = False  # --create, `init`, `pipeline run`: a missing store is made, on purpose
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store.open(self.store_uri, create=self.create)
            except NotAStoreError as exc:
                if str(exc).startswith("no embedops store at "):  # absent, not a stranger's folder
                    raise NotAStoreError(f"{exc}: create it with 'embedops --store {self.store_uri} init' (or add "
                                         "--create), or point --store / $EMBEDOPS_STORE at an existing one") from None
                raise
        return self._store

    @property
    def registry(self) -> Registry:
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


def reflow(doc: str) -> str:
    """A command's docstring as its --help text: each paragraph one line (the terminal wraps it), but
    ``Example:`` lines kept as lines; rich markup escaped, so ``[serve.rollback]`` shows as written."""
    from rich.markup import escape

    paragraphs = []
    for block in inspect.cleandoc(doc).split("\n\n"):
        lines, text = [], []
        for line in block.splitlines():
            if line.lstrip().startswith("Example:"):
                if text:
                    lines.append(" ".join(text))
                    text = []
                lines.append(line.strip())
            else:
                text.append(line.strip())
        if text:
            lines.append(" ".join(text))
        paragraphs.append("\n".join(escape(line) for line in lines))
    return "\n\n".join(paragraphs)


def flags_show_no_type() -> None:
    """Show on/off flags (``--json``, ``--force``) without a ``<bool>`` type in ``--help``: typer 0.29
    labels them as if they took a value. Changes only how help renders (typer's option class)."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_embedops", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich._embedops = True
    TyperOption.display_type_rich = display_type_rich


def usage_errors_on_one_line() -> None:
    """A bad option value or argument (typer/click's usage error, exit 2) as one line on stderr,
    ``error: Invalid value for '-k': ... (see: embedops search --help)``, like embedops' own errors,
    instead of typer's usage block and boxed panel."""
    from typer import rich_utils

    def one_line(exc) -> None:
        if exc.__class__.__name__ == "NoArgsIsHelpError":
            return
        ctx = getattr(exc, "ctx", None)
        see = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {escape(exc.format_message())}{see}", soft_wrap=True)

    rich_utils.rich_format_error = one_line


def reflow_help(typer_app: typer.Typer) -> None:
    """Set every command's help (this app's and its groups') from its reflowed docstring."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = reflow(info.callback.__doc__)
    for group in typer_app.registered_groups:
        reflow_help(group.typer_instance)


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


# Columns whose values a user copies into another command (promote, guard, shadow, model show): kept
# on one line, whatever the terminal's width; the other columns fold to make room.
WHOLE = frozenset({"id", "index", "ref", "subject", "alias", "corpus", "model"})
WORD = 12  # the longest word of another column kept unbroken


class _Table(Table):
    """A rich Table that widens the :data:`WHOLE` columns to their longest word (an id) when it renders,
    then, as far as the width allows (shortest first), keeps the words of the other columns whole
    up to :data:`WORD` characters (``OVERRIDE``, not ``OVERRID``/``E``): they wrap at spaces first."""

    def __rich_console__(self, console, options):
        from rich.cells import cell_len
        from rich.text import Text

        def plain(cell) -> str:
            if isinstance(cell, Text):
                return cell.plain
            try:
                return Text.from_markup(str(cell)).plain
            except Exception:  # not markup after all: measure it as it is
                return str(cell)

        def lines(column):
            return [line for c in column._cells for line in plain(c).splitlines()]

        words, taken = [], 3 * len(self.columns) + 1  # padding and rules
        for column in self.columns:
            header = max((cell_len(w) for w in str(column.header).split()), default=0)  # rich keeps these whole
            if str(column.header) in WHOLE:  # as wide as its longest id: lines wrap at spaces, ids stay whole
                column.min_width = max([header, *(cell_len(w) for line in lines(column) for w in line.split())]) or None
                taken += column.min_width or 0
            else:
                longest = max((cell_len(w) for line in lines(column) for w in line.split()), default=0)
                taken += max(header, column.min_width or 0)
                words.append((column, min(WORD, longest), max(header, column.min_width or 0)))
        room = options.max_width - taken
        for column, width, has in sorted(words, key=lambda w: w[1]):
            if width > has and width - has <= room:
                room -= width - has
                column.min_width = width
        yield from super().__rich_console__(console, options)


def make_table(*headers: str, **kwargs) -> Table:
    """A rich table whose cells wrap instead of being cut, with ids and refs whole on one line (the
    other columns fold first): a user copies them."""
    table = _Table(*headers, **kwargs)
    for column in table.columns:
        column.overflow = "fold"
        if column.header in ("when", "since", "created", "updated"):
            column.max_width = 10  # a when() timestamp: date over time
    return table


def when(ts: str) -> str:
    """A stored UTC timestamp as 'YYYY-MM-DD HH:MM:SS' (it wraps at the space in a narrow table)."""
    return ts[:19].replace("T", " ")


def print_records(records: list, as_json: bool, headers: tuple[str, ...], row: Callable[[Any], list[str]], *,
                  title: str, empty: str, to_dict: Callable[[Any], dict] = lambda r: r.to_dict(),
                  quiet: bool = False) -> None:
    """A list command's output: JSON of every record, ``quiet``: the first column's value of each
    (an id a line, as ``docker ps -q``), or a table of one row each (``empty`` if none)."""
    if quiet:
        for r in records:
            typer.echo(row(r)[0])
        return
    if as_json:
        print_json([to_dict(r) for r in records])
        return
    table = make_table(*headers, title=title)
    for r in records:
        table.add_row(*row(r))
    out.print(table if records else empty)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def progress_bar():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} docs/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    )


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"embedops {version('embedops')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("embedops (not installed: no version recorded)")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    store: Optional[str] = typer.Option(
        None, "--store", "-s", help=f"Store location (a directory). Default: ${STORE_ENV} or ./embedops-store.",
        show_default=False,
    ),
    create: bool = typer.Option(False, "--create", help="Create the store if it does not exist (otherwise a "
                                "missing store is an error, so a typo in --store cannot start an empty one)."),
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print embedops' version and exit."),
):
    """Fine-tune embedding models for your domain and ship them safely."""
    quiet_library_progress()
    ctx.obj = CliState(resolve_store_uri(store), create=create)


def quiet_library_progress() -> None:
    """Keep Hugging Face's tqdm bars ("Loading weights", "Writing model shards") out of command
    output: embedops draws its own progress. The variable covers libraries imported later; the calls
    cover those already imported (in-process runs)."""
    if os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1").upper() not in {"1", "ON", "YES", "TRUE"}:
        return  # the user asked for the bars (read as huggingface_hub reads it)
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def slice_agreement_table(pair):
    """The per-gold-slice agreement of a live pair (:class:`embedops.app.live.LivePair`), lowest
    first, or None when no guard report kept the slices."""
    if not pair.slices:
        return None
    t = make_table("slice", "queries", "overlap", title=f"per gold slice (report {pair.slice_report})")
    for a in pair.slices:
        t.add_row(a.slice, str(a.queries), f"{a.overlap:.3f}")
    return t
