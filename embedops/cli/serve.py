"""embedops serve"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from embedops.cli._common import app, err, handle_errors, state


@app.command("serve")
@handle_errors
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    alias: str = typer.Option("production", "--alias", "-a", help="Alias served by default (a request may name another)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes; each follows the aliases on its own."),
    shadow_alias: Optional[str] = typer.Option(None, "--shadow-alias", help="Mirror live queries to this alias's index, off the request path, and record the comparison."),
    shadow_fraction: float = typer.Option(0.1, "--shadow-fraction", min=0.0, max=1.0, help="Share of live queries mirrored to --shadow-alias."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", help="Policy file: its serve.rollback section, and the guard policy a dashboard promotion is judged under (default ./embedops.toml or built-in defaults)."),
    check_interval: float = typer.Option(1.0, "--check-interval", min=0.05, help="Seconds between reads of each alias's head (a published record on a local store wakes the server at once)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=0, help="Worker threads per process for model calls, index searches and dashboard pages (default: 2 per core, at least 4; 0: the ASGI default of 40). Waiting requests hold none; more threads only take time from the event loop."),
    runtime: str = typer.Option("auto", "--runtime", help="Runtime that embeds queries: auto, onnxruntime or openvino (auto takes OpenVINO on the CPU for fp32 and bf16 indexes; bf16 queries compute in bf16 there)."),
    keep_alive: int = typer.Option(75, "--keep-alive", min=1, help="Seconds an idle HTTP connection stays open; keep it above your clients' and load balancer's idle timeouts, or a reused connection can be closed under a request."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="Another Host name the dashboard answers (repeatable); by default only loopback names and the --host address, so a DNS-rebinding page cannot read it."),
    max_inputs: int = typer.Option(256, "--max-inputs", min=1, help="Texts in one search or embeddings request (413 past it)."),
    max_chars: int = typer.Option(8192, "--max-chars", min=1, help="Characters in one text or query (413 past it)."),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, "--max-body-bytes", min=1, help="Bytes in one request body (413 past it)."),
    session_hours: float = typer.Option(12.0, "--session-hours", min=0.01, help="Hours a dashboard sign-in lasts; a new EMBEDOPS_UI_TOKEN ends every session at once."),
    batch_tokens: int = typer.Option(8192, "--batch-tokens", min=1, help="Tokens (estimated: characters / 4) of concurrent requests' query texts encoded together in one model call; requests that arrive while one call runs form the next."),
    batch_wait_ms: float = typer.Option(0.0, "--batch-wait-ms", min=0.0, max=1000.0, help="Milliseconds a batch that is not full waits for more requests (0: encode at once; a lone client waits for nobody)."),
    batch_queries: int = typer.Option(64, "--batch-queries", min=1, help="Query vectors of concurrent /v1/search requests searched in one LanceDB query (1: each request on its own)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="One line per request on stderr: client, time, request line, status (Common Log Format's fields, as uvicorn writes them)."),
):
    """Serve search and embeddings over HTTP from the indexes behind aliases, live.

    It follows promotions, rollbacks and canaries without a restart (OpenAPI docs at /docs,
    Prometheus metrics at /metrics). The dashboard is at / : read-only, unless EMBEDOPS_UI_TOKEN is
    set when the server starts; then whoever signs in with that token may promote (with a passing
    guard report, as 'promote' needs), roll back and abort canaries, audited as the dashboard.

    A canary ('embedops canary start') answers its share of searches, sticky by client key; with
    --shadow-alias a share of live queries also runs on the shadow index, compared off the request
    path ('embedops shadow live'). The [serve.rollback] policy aborts a canary, or rolls production
    back after a promotion, when errors, latency or agreement cross its limits.

    'kill -USR1 PID' prints the stack of every thread of a serve process to its stderr.

    The server writes nothing to the store on a request: /v1/embeddings for a model with no ONNX
    export answers 409 ('embedops model export-onnx NAME@N' makes one). Requests are bounded
    (--max-inputs, --max-chars, --max-body-bytes: 413 past them). Concurrent requests' query texts
    are encoded together, one model call per batch (--batch-tokens, --batch-wait-ms), and their
    searches of one index go to LanceDB as one query (--batch-queries).

    Example:  embedops --store ./embedops-demo serve --port 8000 --shadow-alias shadow --shadow-fraction 0.1
    Example:  embedops serve --host 0.0.0.0 --allowed-host search.internal
    Example:  embedops serve --no-access-log 2>> serve.log
    Example:  curl -s localhost:8000/v1/search -H 'content-type: application/json' -d '{"query": "database down", "k": 3}'
    """
    import contextlib
    import faulthandler
    import io
    import signal

    import uvicorn

    from embedops.app.dashboard import TOKEN_ENV
    from embedops.app.dashboard.routes import LOOPBACK_HOSTS
    from embedops.app.server import SETTINGS_ENV, ServeSettings, create_app, load_rollback_policy, settings_to_env
    from embedops.app.server.batching import BatchSettings
    from embedops.app.server.limits import RequestLimits

    bind = [] if host in ("0.0.0.0", "::", "") else [host]
    settings = ServeSettings(alias=alias, check_interval=check_interval, shadow_alias=shadow_alias,
                             shadow_fraction=shadow_fraction, rollback=load_rollback_policy(policy_file),
                             runtime=runtime, policy_file=str(policy_file) if policy_file else None,
                             limits=RequestLimits(max_inputs, max_chars, max_body_bytes),
                             allowed_hosts=tuple(dict.fromkeys([*LOOPBACK_HOSTS, *bind, *allowed_host])),
                             session_ttl=3600 * session_hours,
                             batching=BatchSettings(max_tokens=batch_tokens, max_wait_ms=batch_wait_ms,
                                                    max_queries=batch_queries),
                             settle_heap=True)
    if threads is not None:
        settings = replace(settings, threads=threads)
    with contextlib.suppress(io.UnsupportedOperation, ValueError):  # stderr without a file (in-process runs)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # 'kill -USR1': where is each thread?
    store = state(ctx).store  # fails here, clearly, if there is no store
    shadow = f", mirroring {shadow_fraction:.0%} to {shadow_alias!r}" if shadow_alias else ""
    mode = "sign in with the token to act" if os.environ.get(TOKEN_ENV) else f"read-only: set {TOKEN_ENV} to act"
    err.print(f"serving alias {alias!r} of {store.location} on http://{host}:{port}{shadow}\n"
              f"dashboard: http://{host}:{port}/ ({mode})\nAPI docs: http://{host}:{port}/docs",
              soft_wrap=True)  # whole lines: a log file or a pipe is not a terminal to fit
    logging = {"log_config": uvicorn_log_config(access_log), "access_log": access_log}
    if workers > 1:
        os.environ["EMBEDOPS_STORE"] = state(ctx).store_uri
        os.environ[SETTINGS_ENV] = settings_to_env(settings)
        uvicorn.run("embedops.app.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                    timeout_keep_alive=keep_alive, **logging)
        return
    uvicorn.run(create_app(state(ctx).registry, settings, ui_token=os.environ.get(TOKEN_ENV) or None),
                host=host, port=port, timeout_keep_alive=keep_alive, **logging)


ACCESS_FORMAT = '%(client_addr)s - - [%(asctime)s] "%(request_line)s" %(status_code)s'


def uvicorn_log_config(access_log: bool) -> dict:
    """uvicorn's logging: its own messages from warnings up, and with ``access_log`` one line per
    request on stderr in Common Log Format's order (client, time, request line, status)."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s",
                        "use_colors": None},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": ACCESS_FORMAT,
                       "datefmt": "%d/%b/%Y:%H:%M:%S %z", "use_colors": False},
        },
        "handlers": {
            "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"level": "WARNING"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO" if access_log else "WARNING",
                               "propagate": False},
        },
    }
