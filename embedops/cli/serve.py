"""embedops serve"""

from __future__ import annotations

import os

import typer

from embedops.cli._common import app, err, handle_errors, state


@app.command("serve")
@handle_errors
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias served by default (a request may name another)."),
    workers: int = typer.Option(1, "--workers", help="Server processes; each follows the aliases on its own."),
):
    """Serve search and embeddings over HTTP from the index an alias points at, following promotions
    and rollbacks without a restart (OpenAPI docs at /docs, Prometheus metrics at /metrics).

    Example:  embedops --store ./embedops-demo serve --port 8000
    Example:  curl -s localhost:8000/v1/search -H 'content-type: application/json' -d '{"query": "database down", "k": 3}'
    """
    import uvicorn

    store = state(ctx).store  # fails here, clearly, if there is no store
    err.print(f"serving alias {alias!r} of {store.location} on http://{host}:{port} (docs: /docs)")
    if workers > 1:
        os.environ["EMBEDOPS_STORE"] = state(ctx).store_uri
        os.environ["EMBEDOPS_SERVE_ALIAS"] = alias
        uvicorn.run("embedops.app.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
        return
    from embedops.app.server import create_app

    uvicorn.run(create_app(state(ctx).registry, alias=alias), host=host, port=port, log_level="warning")
