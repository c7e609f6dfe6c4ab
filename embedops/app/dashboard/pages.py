"""The dashboard's read-only pages, one method each (:class:`ReadPages`), rendered on the server by
:class:`Pages` (Jinja2, autoescaped) from :mod:`.views`, charts as inline SVG (:mod:`.charts`)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from embedops.app.dashboard import charts, views
from embedops.app.dashboard.auth import COOKIE, UiAuth
from embedops.app.live import parse_since
from embedops.errors import NotFoundError, UsageError
from embedops.registry import Registry

STATIC = Path(__file__).with_name("static")
_HIDDEN_PARAMS = {"run_key", "resumed", "trained_in", "pairs_sha256"}  # shown elsewhere on the page, or noise


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _param(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else _fmt(v)


class Pages:
    """Renders templates with what every page shows (store, sign-in state, CSRF token)."""

    def __init__(self, registry: Registry, auth: UiAuth):
        self.registry, self.auth = registry, auth
        self.env = Environment(
            loader=PackageLoader("embedops.app.dashboard", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["fmt"] = _fmt

    def render(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        sid = self.auth.session(request.cookies.get(COOKIE))
        page = self.env.get_template(template).render(
            store=self.registry.store.location,
            writable=self.auth.writable,
            signed_in=sid is not None,
            csrf=self.auth.csrf(sid),
            rendered=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def message(
        self, request: Request, status: int, heading: str, message: str, back: str = "/", css: str = ""
    ) -> HTMLResponse:
        return self.render(
            request, "message.html", status, title=heading, nav="", heading=heading, message=message, back=back, css=css
        )

    def not_found(self, request: Request, exc: Exception) -> HTMLResponse:
        return self.message(request, 404, "Not found", str(exc), css="fail")


class ReadPages:
    """One method per page; each reads the registry's own records on every request."""

    def __init__(self, registry: Registry, pages: Pages):
        self.registry, self.pages = registry, pages

    def overview(self, request: Request):
        return self.pages.render(
            request, "overview.html", title="Overview", nav="overview", view=views.overview(self.registry)
        )

    def aliases(self, request: Request):
        aliases = sorted(self.registry.aliases.list(), key=lambda a: a.name)
        return self.pages.render(request, "aliases.html", title="Aliases", nav="aliases", aliases=aliases)

    def alias(self, request: Request, name: str, before: int | None = None):
        try:
            records = views.alias_timeline(self.registry, name, before=before)
            head = self.registry.aliases.get(name)
        except (NotFoundError, UsageError) as exc:
            return self.pages.not_found(request, exc)
        events = [
            (
                r.ts,
                "canary" if r.action.startswith("canary") else r.action,
                f"{r.action} -> {r.value}{' (automatic)' if r.automatic else ''} by {r.actor}",
            )
            for r in records
        ]
        older = records[0].seq if records and records[0].seq > 1 else None
        return self.pages.render(
            request,
            "alias.html",
            title=f"alias {name}",
            nav="aliases",
            name=name,
            records=records,
            total=head.seq if head else 0,
            older=older,
            head=head,
            chart=charts.time_axis(events, title=f"switches of {name}"),
        )

    def models(self, request: Request):
        nodes = views.lineage(self.registry)
        graph = charts.lineage_graph([(n.model.ref, n.depth, n.row, n.model.parent, n.kind) for n in nodes])
        return self.pages.render(request, "models.html", title="Models", nav="models", nodes=nodes, graph=graph)

    def model(self, request: Request, ref: str):
        try:
            model = self.registry.models.get(ref)
        except (NotFoundError, UsageError) as exc:
            return self.pages.not_found(request, exc)
        m = model.metrics
        curve = [(p["step"], p["loss"]) for p in m.get("curve", []) if "loss" in p and "step" in p]
        sweep = m.get("alpha_sweep") or []
        sweep_series = {
            name: [(s["alpha"], s[key]) for s in sorted(sweep, key=lambda s: s["alpha"]) if s.get(key) is not None]
            for name, key in (("domain nDCG@10", "domain_ndcg@10"), ("general Spearman", "general_spearman"))
        }
        params = [(k, _param(v)) for k, v in sorted(model.params.items()) if k not in _HIDDEN_PARAMS]
        return self.pages.render(
            request,
            "model.html",
            title=f"model {model.ref}",
            nav="models",
            model=model,
            params=params,
            loss_chart=charts.line_chart({"loss": curve}, x_label="step", y_label="loss") if curve else None,
            sweep_chart=charts.line_chart(
                {k: v for k, v in sweep_series.items() if v}, x_label="alpha", y_label="score (points)"
            )
            if sweep
            else None,
        )

    def indexes(self, request: Request):
        return self.pages.render(
            request, "indexes.html", title="Indexes", nav="indexes", rows=views.index_rows(self.registry)
        )

    def reports(self, request: Request):
        return self.pages.render(
            request, "reports.html", title="Guard reports", nav="reports", reports=views.reports(self.registry)
        )

    def report(self, request: Request, report_id: str):
        try:
            view = views.report_view(self.registry, report_id)
        except NotFoundError as exc:
            return self.pages.not_found(request, exc)
        ev = view.evidence
        drawn = []
        if ev.get("recall_curves"):
            drawn.append(
                (
                    "recall@k, candidate and production",
                    charts.line_chart(
                        {
                            side: sorted((int(k), float(v)) for k, v in curve.items())
                            for side, curve in ev["recall_curves"].items()
                        },
                        x_label="k",
                        y_label="recall@k (%)",
                        log_x=True,
                    ),
                )
            )
        if ev.get("per_query_delta"):
            drawn.append(
                (
                    f"per-query {ev['metric']} change, candidate - production (points)",
                    charts.histogram(list(ev["per_query_delta"].values()), x_label=f"{ev['metric']} change (points)"),
                )
            )
        judged = [r for r in view.slices if r.get("judged")]
        if judged:
            drawn.append(
                (
                    "per slice: mean change and the lower bound of its interval (points)",
                    charts.bar_chart(
                        [r["slice"] for r in judged],
                        {"mean": [r["mean"] for r in judged], "lower bound": [r["ci_low"] for r in judged]},
                        y_label="change (points)",
                    ),
                )
            )
        if ev.get("general"):
            names = [
                Path(b["benchmark"]).name + (f" vs {b['reference']}" if b.get("reference") else "")
                for b in ev["general"]
            ]
            drawn.append(
                (
                    "general benchmarks, reference and candidate",
                    charts.bar_chart(
                        names,
                        {
                            "reference": [b["base"] for b in ev["general"]],
                            "candidate": [b["candidate"] for b in ev["general"]],
                        },
                        y_label="score (points)",
                    ),
                )
            )
        return self.pages.render(
            request, "report.html", title=f"guard report {report_id}", nav="reports", view=view, charts=drawn
        )

    def live(self, request: Request, since: str = "1h"):
        try:
            since_ts = parse_since(since)
        except UsageError as exc:
            return self.pages.message(request, 422, "Bad 'since'", str(exc), back="/ui/live", css="fail")
        live = views.live_view(self.registry, since=since_ts)
        drawn = []
        for s in live.series:
            xs = {i: p.minute[11:16] for i, p in enumerate(s.points)}
            drawn.append(
                (
                    s,
                    charts.line_chart(
                        {"overlap@k": [(i, p.overlap) for i, p in enumerate(s.points)]},
                        x_label="minute (UTC)",
                        y_label="overlap@k",
                        x_labels=xs,
                    ),
                    charts.line_chart(
                        {
                            s.primary_index[-12:]: [(i, p.primary_ms) for i, p in enumerate(s.points)],
                            s.other_index[-12:]: [(i, p.other_ms) for i, p in enumerate(s.points)],
                        },
                        x_label="minute (UTC)",
                        y_label="ms",
                        x_labels=xs,
                    ),
                )
            )
        canaries = [a for a in self.registry.aliases.list() if a.canary]
        return self.pages.render(
            request,
            "live.html",
            title="Shadow and canary",
            nav="live",
            since=since_ts,
            series=drawn,
            worst=live.disagreements,
            canaries=canaries,
        )

    def static(self, name: str):
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()}:
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(path, headers={"Cache-Control": "max-age=300"})

    def login(self, request: Request):
        return self.pages.render(request, "login.html", title="Sign in", nav="")

    def favicon(self):
        return Response(status_code=204)
