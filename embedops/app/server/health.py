"""``GET /healthz`` (the process is up), ``GET /readyz`` (the served alias's encoder and index are
open; ``writes`` says whether the store takes writes) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from embedops.app.server.state import ServerState


def health_router(state: ServerState) -> APIRouter:
    router = APIRouter()
    settings, follower, background, metrics = state.settings, state.follower, state.background, state.metrics

    # healthz and readyz run on the event loop, not in the thread pool the searches queue for: under
    # load they still answer at once, and what readyz says is what the next search will use.
    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @router.get("/readyz", summary="The served alias's index and encoder are open")
    async def readyz(response: Response) -> dict:
        try:
            view = follower.opened(settings.alias) or await run_in_threadpool(follower.view, settings.alias)
        except Exception as exc:
            response.status_code = 503
            return {"ready": False, "alias": settings.alias, "reason": str(exc), "writes": background.writes()}
        body = {"ready": True, "alias": settings.alias, "index_id": view.stable.index_id,
                "model_ref": view.stable.record.model_ref, "provider": view.stable.encoder.provider,
                "writes": background.writes(),
                "record": {"seq": view.state.seq, "ts": view.state.ts, "switched_at": view.switched_at},
                "follows": {"check_interval": settings.check_interval, "file_events": background.notified}}
        if view.stable.record.bridge is not None:  # the new model's queries over an old index
            body["bridge"] = view.stable.bridge_info
        if view.canary is not None and view.state.canary is not None:
            body["canary"] = {"index_id": view.canary.index_id, "model_ref": view.canary.record.model_ref,
                              "percent": view.state.canary.percent}
        if settings.shadow_alias and settings.shadow_alias in follower.views():
            body["shadow"] = {"alias": settings.shadow_alias,
                              "index_id": follower.views()[settings.shadow_alias].stable.index_id,
                              "fraction": settings.shadow_fraction}
        if follower.store_error:
            body["store_error"] = follower.store_error  # still serving the open index
        if follower.open_errors.get(settings.alias):
            body["open_error"] = follower.open_errors[settings.alias]
        return body

    @router.get("/metrics", summary="Prometheus metrics")
    def prometheus() -> Response:
        metrics.show_targets(follower.targets())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
