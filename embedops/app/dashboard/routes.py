"""The dashboard's pages and actions, as a FastAPI router that ``embedops serve`` mounts at ``/``.

Pages are server-rendered (Jinja2, autoescaped) from :mod:`.views`; charts are inline SVG
(:mod:`.charts`); the one stylesheet is served from the package. Actions (promote, rollback,
canary abort) go through a confirmation page that names what changes and carries the alias value
it showed, so the switch is a compare-and-swap against what the person saw; then through the same
functions as the CLI (a promotion needs a passing guard report under the server's policy file,
exactly as ``embedops promote``), with the dashboard and the client address as the actor.

>>> app.include_router(dashboard_router(registry, auth=UiAuth(os.environ.get(TOKEN_ENV))))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from embedops.app.dashboard import charts, views
from embedops.app.dashboard.auth import COOKIE, NotSignedIn, UiAuth, WriteRefused
from embedops.app.live import parse_since
from embedops.app.promotion import promote as promote_index
from embedops.errors import AliasConflictError, EmbedopsError, NotFoundError, PromotionRefused, UsageError
from embedops.registry import UNSET, Registry

STATIC = Path(__file__).with_name("static")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_FORM_BYTES = 16_384  # a dashboard form is an alias, an index id, a reason and a CSRF token


def host_name(header: str | None) -> str:
    """The host of a ``Host`` header, lower-cased, without its port (``[::1]:8000`` -> ``::1``)."""
    h = (header or "").strip().lower()
    if h.startswith("["):
        return h[1:h.index("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h
_HIDDEN_PARAMS = {"run_key", "resumed", "trained_in", "pairs_sha256"}  # shown elsewhere on the page, or noise


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _param(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else _fmt(v)


class _Pages:
    """Renders templates with what every page shows (store, sign-in state, CSRF token)."""

    def __init__(self, registry: Registry, auth: UiAuth):
        self.registry, self.auth = registry, auth
        self.env = Environment(loader=PackageLoader("embedops.app.dashboard", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.globals["fmt"] = _fmt

    def render(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        sid = self.auth.session(request.cookies.get(COOKIE))
        page = self.env.get_template(template).render(
            store=self.registry.store.location, writable=self.auth.writable, signed_in=sid is not None,
            csrf=self.auth.csrf(sid), rendered=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            **context)
        return HTMLResponse(page, status_code=status)

    def message(self, request: Request, status: int, heading: str, message: str, back: str = "/",
                css: str = "") -> HTMLResponse:
        return self.render(request, "message.html", status, title=heading, nav="", heading=heading,
                           message=message, back=back, css=css)


def _actor(request: Request) -> str:
    return f"dashboard ({request.client.host if request.client else 'unknown client'})"


def dashboard_router(registry: Registry, *, auth: UiAuth | None = None, policy_file: str | None = None,
                     allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> APIRouter:
    """The dashboard over ``registry``: pages at ``/`` and ``/ui/...``; writes need ``auth``'s token.
    ``policy_file``: the guard policy a promotion is judged under (default ./embedops.toml).
    ``allowed_hosts``: the ``Host`` names it answers (400 for any other, so a DNS-rebinding page on
    another name cannot read it)."""
    auth = auth or UiAuth()
    pages = _Pages(registry, auth)
    allowed = {h.lower().strip("[]") for h in allowed_hosts}

    def check_host(request: Request) -> None:
        name = host_name(request.headers.get("host"))
        if name not in allowed:
            raise HTTPException(400, f"Host {name!r} is not one this dashboard answers ({', '.join(sorted(allowed))}); "
                                     "start the server with --allowed-host NAME to add it")

    router = APIRouter(include_in_schema=False, dependencies=[Depends(check_host)])

    def not_found(request: Request, exc: Exception) -> HTMLResponse:
        return pages.message(request, 404, "Not found", str(exc), css="fail")

    @router.get("/", response_class=HTMLResponse)
    def overview_page(request: Request):
        return pages.render(request, "overview.html", title="Overview", nav="overview", view=views.overview(registry))

    @router.get("/ui/aliases", response_class=HTMLResponse)
    def aliases_page(request: Request):
        aliases = sorted(registry.aliases.list(), key=lambda a: a.name)
        return pages.render(request, "aliases.html", title="Aliases", nav="aliases", aliases=aliases)

    @router.get("/ui/aliases/{name}", response_class=HTMLResponse)
    def alias_page(request: Request, name: str, before: int | None = None):
        try:
            records = views.alias_timeline(registry, name, before=before)
            head = registry.aliases.get(name)
        except (NotFoundError, UsageError) as exc:
            return not_found(request, exc)
        events = [(r.ts, "canary" if r.action.startswith("canary") else r.action,
                   f"{r.action} -> {r.value}{' (automatic)' if r.automatic else ''} by {r.actor}") for r in records]
        older = records[0].seq if records and records[0].seq > 1 else None
        return pages.render(request, "alias.html", title=f"alias {name}", nav="aliases", name=name, records=records,
                            total=head.seq if head else 0, older=older, head=head,
                            chart=charts.time_axis(events, title=f"switches of {name}"))

    @router.get("/ui/models", response_class=HTMLResponse)
    def models_page(request: Request):
        nodes = views.lineage(registry)
        graph = charts.lineage_graph([(n.model.ref, n.depth, n.row, n.model.parent, n.kind) for n in nodes])
        return pages.render(request, "models.html", title="Models", nav="models", nodes=nodes, graph=graph)

    @router.get("/ui/models/{ref}", response_class=HTMLResponse)
    def model_page(request: Request, ref: str):
        try:
            model = registry.models.get(ref)
        except (NotFoundError, UsageError) as exc:
            return not_found(request, exc)
        m = model.metrics
        curve = [(p["step"], p["loss"]) for p in m.get("curve", []) if "loss" in p and "step" in p]
        sweep = m.get("alpha_sweep") or []
        sweep_series = {name: [(s["alpha"], s[key]) for s in sorted(sweep, key=lambda s: s["alpha"])
                               if s.get(key) is not None] for name, key in
                        (("domain nDCG@10", "domain_ndcg@10"), ("general Spearman", "general_spearman"))}
        params = [(k, _param(v)) for k, v in sorted(model.params.items()) if k not in _HIDDEN_PARAMS]
        return pages.render(
            request, "model.html", title=f"model {model.ref}", nav="models", model=model, params=params,
            loss_chart=charts.line_chart({"loss": curve}, x_label="step", y_label="loss") if curve else None,
            sweep_chart=charts.line_chart({k: v for k, v in sweep_series.items() if v}, x_label="alpha",
                                          y_label="score (points)") if sweep else None)

    @router.get("/ui/indexes", response_class=HTMLResponse)
    def indexes_page(request: Request):
        return pages.render(request, "indexes.html", title="Indexes", nav="indexes", rows=views.index_rows(registry))

    @router.get("/ui/reports", response_class=HTMLResponse)
    def reports_page(request: Request):
        return pages.render(request, "reports.html", title="Guard reports", nav="reports",
                            reports=views.reports(registry))

    @router.get("/ui/reports/{report_id}", response_class=HTMLResponse)
    def report_page(request: Request, report_id: str):
        try:
            view = views.report_view(registry, report_id)
        except NotFoundError as exc:
            return not_found(request, exc)
        ev = view.evidence
        drawn = []
        if ev.get("recall_curves"):
            drawn.append(("recall@k, candidate and production", charts.line_chart(
                {side: sorted((int(k), float(v)) for k, v in curve.items())
                 for side, curve in ev["recall_curves"].items()},
                x_label="k", y_label="recall@k (%)", log_x=True)))
        if ev.get("per_query_delta"):
            drawn.append((f"per-query {ev['metric']} change, candidate - production (points)", charts.histogram(
                list(ev["per_query_delta"].values()), x_label=f"{ev['metric']} change (points)")))
        judged = [r for r in view.slices if r.get("judged")]
        if judged:
            drawn.append(("per slice: mean change and the lower bound of its interval (points)", charts.bar_chart(
                [r["slice"] for r in judged], {"mean": [r["mean"] for r in judged],
                                               "lower bound": [r["ci_low"] for r in judged]},
                y_label="change (points)")))
        if ev.get("general"):
            names = [Path(b["benchmark"]).name + (f" vs {b['reference']}" if b.get("reference") else "")
                     for b in ev["general"]]
            drawn.append(("general benchmarks, reference and candidate", charts.bar_chart(
                names, {"reference": [b["base"] for b in ev["general"]],
                        "candidate": [b["candidate"] for b in ev["general"]]},
                y_label="score (points)")))
        return pages.render(request, "report.html", title=f"guard report {report_id}", nav="reports", view=view,
                            charts=drawn)

    @router.get("/ui/live", response_class=HTMLResponse)
    def live_page(request: Request, since: str = "1h"):
        try:
            since_ts = parse_since(since)
        except UsageError as exc:
            return pages.message(request, 422, "Bad 'since'", str(exc), back="/ui/live", css="fail")
        live = views.live_view(registry, since=since_ts)
        drawn = []
        for s in live.series:
            xs = {i: p.minute[11:16] for i, p in enumerate(s.points)}
            drawn.append((s, charts.line_chart({"overlap@k": [(i, p.overlap) for i, p in enumerate(s.points)]},
                                               x_label="minute (UTC)", y_label="overlap@k", x_labels=xs),
                          charts.line_chart({s.primary_index[-12:]: [(i, p.primary_ms) for i, p in enumerate(s.points)],
                                             s.other_index[-12:]: [(i, p.other_ms) for i, p in enumerate(s.points)]},
                                            x_label="minute (UTC)", y_label="ms", x_labels=xs)))
        canaries = [a for a in registry.aliases.list() if a.canary]
        return pages.render(request, "live.html", title="Shadow and canary", nav="live", since=since_ts,
                            series=drawn, worst=live.disagreements, canaries=canaries)

    @router.get("/ui/static/{name}")
    def static(name: str):
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()}:
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(path, headers={"Cache-Control": "max-age=300"})

    @router.get("/ui/login", response_class=HTMLResponse)
    def login_page(request: Request):
        return pages.render(request, "login.html", title="Sign in", nav="")

    async def form(request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise HTTPException(413, f"a dashboard form is at most {MAX_FORM_BYTES} bytes")
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    @router.post("/ui/login")
    async def login(request: Request):
        try:
            auth.check_origin(request.headers.get("origin"), request.headers.get("host"))
        except WriteRefused as exc:
            return pages.message(request, 403, "Refused", str(exc), css="fail")
        data = await form(request)
        if not auth.accepts(data.get("token")):
            why = "wrong token" if auth.writable else "this server has no EMBEDOPS_UI_TOKEN: the dashboard is read-only"
            return pages.message(request, 403, "Not signed in", why, back="/ui/login", css="fail")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, auth.session_cookie(), httponly=True, samesite="strict", path="/",
                            max_age=int(auth.session_ttl), secure=request.url.scheme == "https")
        return response

    @router.post("/ui/logout")
    async def logout(request: Request):
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/ui/confirm/{action}", response_class=HTMLResponse)
    def confirm_page(request: Request, action: str, alias: str = "production", index_id: str | None = None):
        if auth.session(request.cookies.get(COOKIE)) is None:
            return pages.message(request, 403, "Sign in first", "changing an alias needs the dashboard token",
                                 back="/ui/login", css="fail")
        head = registry.aliases.get(alias)
        if head is None:
            return not_found(request, NotFoundError(f"alias {alias!r} has no records"))
        back = f"/ui/aliases/{alias}"
        common = {"title": "Confirm", "nav": "", "action": action, "back": back}
        if action == "rollback" and head.previous:
            return pages.render(request, "confirm.html", **common, heading=f"Roll back {alias}?",
                                change=f"{alias} will point at {head.previous} instead of {head.value}"
                                       + (f", and its canary of {head.canary.index_id} ends" if head.canary else "")
                                       + ".",
                                fields={"alias": alias, "expect": head.value or ""}, button="Roll back",
                                button_class="danger", default_reason="rolled back from the dashboard")
        if action == "canary-abort" and head.canary:
            return pages.render(request, "confirm.html", **common, heading=f"Abort the canary on {alias}?",
                                change=f"{head.canary.index_id} stops answering {head.canary.percent:g}% of the "
                                       f"searches of {alias}; all of them go to {head.value}.",
                                fields={"alias": alias, "expect_canary": head.canary.index_id}, button="Abort canary",
                                button_class="danger", default_reason="canary aborted from the dashboard")
        if action == "promote" and index_id:
            return pages.render(request, "confirm.html", **common, heading=f"Promote to {alias}?",
                                change=f"{alias} will point at {index_id} instead of {head.value}, if a passing guard "
                                       "report authorises exactly this switch now.",
                                fields={"alias": alias, "index_id": index_id, "expect": head.value or ""},
                                button="Promote", button_class="primary", default_reason="")
        missing = "previous index" if action == "rollback" else "canary"
        why = (f"alias {alias!r} has no {missing} for {action!r}" if action in ("rollback", "canary-abort")
               else f"unknown action {action!r}")
        return pages.message(request, 409, "Nothing to confirm", why, back=back, css="fail")

    @router.post("/ui/actions/{action}")
    async def act(request: Request, action: str):
        try:  # who is asking is checked before the body is read
            sid = auth.caller(cookie=request.cookies.get(COOKIE), authorization=request.headers.get("authorization"),
                              origin=request.headers.get("origin"), host=request.headers.get("host"))
            data = await form(request)
            auth.check_csrf(sid, data.get("csrf"))
        except NotSignedIn as exc:
            return pages.message(request, 401, "Not signed in", str(exc), back="/ui/login", css="fail")
        except WriteRefused as exc:
            return pages.message(request, 403, "Refused", str(exc), css="fail")
        alias = data.get("alias") or "production"
        reason = (data.get("reason") or "").strip() or None
        by = _actor(request)

        def run():
            if action == "rollback":
                return registry.rollback(alias, reason=reason or "rolled back from the dashboard",
                                         expect=data.get("expect", UNSET), by=by)
            if action == "canary-abort":
                return registry.abort_canary(alias, reason=reason or "canary aborted from the dashboard",
                                             expect_canary=data.get("expect_canary") or None, by=by)
            if action == "promote":
                if not data.get("index_id"):
                    raise UsageError("the form field 'index_id' is required")
                return promote_index(registry, data["index_id"], alias,
                                     policy_file=Path(policy_file) if policy_file else None,
                                     expect=data.get("expect") or None, reason=reason, by=by)
            raise NotFoundError(f"unknown action {action!r}; use promote, rollback or canary-abort")

        back = f"/ui/aliases/{alias}"
        try:
            state = await run_in_threadpool(run)
        except NotFoundError as exc:
            return pages.message(request, 404, "Not found", str(exc), back=back, css="fail")
        except (PromotionRefused, AliasConflictError) as exc:
            return pages.message(request, 409, "Refused", str(exc), back=back, css="fail")
        except KeyError as exc:
            return pages.message(request, 422, "Missing field", f"the form field {exc} is required", back=back,
                                 css="fail")
        except (UsageError, EmbedopsError) as exc:
            return pages.message(request, 409, "Refused", str(exc), back=back, css="fail")
        return pages.message(request, 200, "Done", f"{alias} now points at {state.value} (record {state.seq}, by {by}"
                             + (f"; was {state.previous}" if state.previous else "") + ").", back=back, css="pass")

    @router.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    return router
