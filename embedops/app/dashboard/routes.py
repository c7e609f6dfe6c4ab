"""The dashboard as a FastAPI router that ``embedops serve`` mounts at ``/``: the table of its routes
over the read-only pages (:mod:`.pages`, one method each) and the actions (:mod:`.actions`: sign
in, confirm, promote, rollback, canary abort), every route behind the ``Host`` check.

>>> app.include_router(dashboard_router(registry, auth=UiAuth(os.environ.get(TOKEN_ENV))))  # doctest: +SKIP
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from embedops.app.dashboard.actions import Actions
from embedops.app.dashboard.auth import UiAuth
from embedops.app.dashboard.pages import Pages, ReadPages
from embedops.registry import Registry

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def host_name(header: str | None) -> str:
    """The host of a ``Host`` header, lower-cased, without its port (``[::1]:8000`` -> ``::1``)."""
    h = (header or "").strip().lower()
    if h.startswith("["):
        return h[1:h.index("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def dashboard_router(registry: Registry, *, auth: UiAuth | None = None, policy_file: str | None = None,
                     allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> APIRouter:
    """The dashboard over ``registry``: pages at ``/`` and ``/ui/...``; writes need ``auth``'s token.
    ``policy_file``: the guard policy a promotion is judged under (default ./embedops.toml).
    ``allowed_hosts``: the ``Host`` names it answers (400 for any other, so a DNS-rebinding page on
    another name cannot read it)."""
    auth = auth or UiAuth()
    pages = Pages(registry, auth)
    read, actions = ReadPages(registry, pages), Actions(registry, pages, auth, policy_file)
    allowed = {h.lower().strip("[]") for h in allowed_hosts}

    def check_host(request: Request) -> None:
        name = host_name(request.headers.get("host"))
        if name not in allowed:
            raise HTTPException(400, f"Host {name!r} is not one this dashboard answers ({', '.join(sorted(allowed))}); "
                                     "start the server with --allowed-host NAME to add it")

    router = APIRouter(include_in_schema=False, dependencies=[Depends(check_host)])
    html = {"response_class": HTMLResponse}
    for path, endpoint in (("/", read.overview), ("/ui/aliases", read.aliases), ("/ui/aliases/{name}", read.alias),
                           ("/ui/models", read.models), ("/ui/models/{ref}", read.model),
                           ("/ui/indexes", read.indexes), ("/ui/reports", read.reports),
                           ("/ui/reports/{report_id}", read.report), ("/ui/live", read.live),
                           ("/ui/login", read.login), ("/ui/confirm/{action}", actions.confirm)):
        router.add_api_route(path, endpoint, methods=["GET"], **html)
    router.add_api_route("/ui/static/{name}", read.static, methods=["GET"])
    router.add_api_route("/favicon.ico", read.favicon, methods=["GET"], include_in_schema=False)
    router.add_api_route("/ui/login", actions.login, methods=["POST"])
    router.add_api_route("/ui/logout", actions.logout, methods=["POST"])
    router.add_api_route("/ui/actions/{action}", actions.act, methods=["POST"])
    return router
