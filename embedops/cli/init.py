"""embedops init"""

from __future__ import annotations

import typer

from embedops.cli._common import app, handle_errors, out, state


@app.command("init")
@handle_errors
def init(ctx: typer.Context):
    """Create the store (--store, $EMBEDOPS_STORE or ./embedops-store) if it does not exist yet.

    Every other command needs an existing store (or --create), so a typo in --store is an error
    rather than a new empty store. Running it again on a store changes nothing.

    Example:  embedops --store ./embedops-store init
    Example:  embedops --store s3://bucket/team/embedops init
    """
    cli = state(ctx)
    cli.create = True
    store = cli.store
    out.print(f"embedops store at {store.location}", soft_wrap=True)
