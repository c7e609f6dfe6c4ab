"""The ASGI app of ``embedops serve`` (FastAPI): :func:`create_app` composes the routers over one
:class:`~embedops.app.server.state.ServerState`, and runs its background loop (follow aliases,
mirror queries, apply the rollback policy) for the app's lifetime.

Endpoints:

* ``POST /v1/search`` ``{"query": str | "queries": [str], "k": int, "alias"?: str, "client"?: str}``:
  hits (id, score, title, snippet) with the index id, model ref and route (stable or canary) that
  answered (:mod:`.search_api`).
* ``POST /v1/embeddings``, ``GET /v1/models``: OpenAI-compatible (:mod:`.openai_api`); ``model``
  names an alias (its stable index's model, never the canary's: vectors stay comparable with the
  index they are searched against) or a model ref ``NAME@N``. Errors under ``/v1/`` come in
  OpenAI's shape.
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (:mod:`.health`).

Concurrent requests' texts are encoded together, one model call per batch (:mod:`.batching`).

>>> app = create_app(Registry(Store.open("./embedops-store")), ServeSettings(shadow_alias="shadow"))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from embedops.app.dashboard import UiAuth, dashboard_router
from embedops.app.server.health import health_router
from embedops.app.server.limits import BodyLimit
from embedops.app.server.metrics import RequestCounter
from embedops.app.server.openai_api import EmbeddingTarget, install_openai_errors, openai_router
from embedops.app.server.search_api import search_router
from embedops.app.server.settings import ServeSettings
from embedops.app.server.state import ServerState
from embedops.registry import Registry

__all__ = ["ServeSettings", "create_app"]


def create_app(registry: Registry, settings: ServeSettings | None = None, *, alias: str | None = None,
               check_interval: float | None = None, ui_token: str | None = None, utc_now=None) -> FastAPI:
    """The ASGI app serving ``registry``'s aliases (``settings.alias`` by default). ``alias`` and
    ``check_interval`` override those settings. The dashboard is at ``/``; ``ui_token`` (what
    ``$EMBEDOPS_UI_TOKEN`` gives `embedops serve`) allows its promote, rollback and canary abort.
    ``utc_now``: the wall clock a promotion's age is read with (tests inject one)."""
    settings = settings or ServeSettings()
    if alias is not None:
        settings = replace(settings, alias=alias)
    if check_interval is not None:
        settings = replace(settings, check_interval=check_interval)
    state = ServerState.open(registry, settings, utc_now)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.threads:  # sync endpoints run on anyio's thread pool: bound it (see ServeSettings)
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        state.start()
        yield
        state.stop()

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline
    # package's own files (under /static-offline-docs), never from a CDN
    app = FastAPIOffline(title="embedops", version="1", lifespan=lifespan,
                         description="Search and embeddings from the indexes behind aliases, with canaries, live "
                                     "shadow traffic and automatic rollback. The dashboard is at /.")
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(RequestCounter, metrics=state.metrics)  # outermost: counts the body limit's 413s too
    app.include_router(dashboard_router(registry, auth=UiAuth(ui_token, session_ttl=settings.session_ttl),
                                        policy_file=settings.policy_file, allowed_hosts=settings.allowed_hosts))
    app.include_router(search_router(state))

    async def alias_target(alias_name: str) -> EmbeddingTarget:
        reader = (await state.open_view(alias_name)).stable  # never the canary's: vectors stay comparable
        return EmbeddingTarget(reader.encoder, reader.record.model_ref, reader.index_id)

    install_openai_errors(app)
    app.include_router(openai_router(registry, limits=settings.limits, metrics=state.metrics,
                                     alias_target=alias_target, runtime=settings.runtime,
                                     guard=lambda: state.in_flight, batchers=state.batchers))
    app.include_router(health_router(state))
    app.state.server = state
    for name in ("follower", "mirror", "background", "signals", "settings", "batchers"):  # what tests look at
        setattr(app.state, name, getattr(state, name))
    return app
