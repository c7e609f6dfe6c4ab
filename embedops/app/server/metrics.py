"""The Prometheus metrics of one ``embedops serve`` app (prometheus-client, one registry per app: no
global state). With ``--workers N`` each worker process has its own; scrape separate ``serve``
processes on their own ports to see each."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The endpoint label of a request path: the API's own names; dashboard pages are "dashboard" and any
# other path "other" (a label per unknown path would let a scanner grow the metrics without bound).
ENDPOINTS = {"/v1/search": "search", "/v1/embeddings": "embeddings", "/v1/models": "models", "/healthz": "healthz",
             "/readyz": "readyz", "/metrics": "metrics"}


class ServeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("embedops_requests", "Requests by endpoint and HTTP status.", ["endpoint", "status"],
                                registry=r)
        self.errors = Counter("embedops_index_errors", "Searches an index failed to answer (HTTP 500).",
                              ["alias", "index"], registry=r)
        self.http_seconds = Histogram("embedops_http_request_duration_seconds", "Time to answer a request, by "
                                      "endpoint and HTTP status (every request, errors included).",
                                      ["endpoint", "status"], registry=r)
        self.latency = Histogram("embedops_request_seconds", "Request latency by endpoint and answering index.",
                                 ["endpoint", "index"], registry=r)
        self.target = Gauge("embedops_alias_target", "1 for the index each alias is served from.", ["alias", "index"],
                            registry=r)
        self.canary = Gauge("embedops_canary_percent", "Share of an alias's search traffic its canary answers.",
                            ["alias", "index"], registry=r)
        self.agreement = Gauge("embedops_live_agreement", "Mean overlap@k of mirrored queries over the rollback "
                               "window, by kind (shadow, canary, previous).", ["kind", "alias"], registry=r)
        self.mirrored = Counter("embedops_mirror_queries", "Mirrored queries by kind and outcome (done, dropped: "
                                "the queue was full, failed).", ["kind", "outcome"], registry=r)
        self.unrecorded = Counter("embedops_live_unrecorded", "Comparisons dropped because the store could not "
                                  "be written for too long.", registry=r)
        self.automatic = Counter("embedops_automatic_actions", "Canary aborts and rollbacks this server made "
                                 "by its rollback policy.", ["alias", "action"], registry=r)
        self.open_seconds = Histogram("embedops_switch_open_seconds", "Time to open what an alias's new record "
                                "names (index table, encoder) before the server switches to it.", ["alias"],
                                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=r)
        self.writable = Gauge("embedops_store_writable", "1 when the last write to the store succeeded.",
                              registry=r)
        self.batch_requests = Histogram("embedops_batch_requests", "Requests whose texts were encoded together "
                                        "in one model call (dynamic batching).",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_texts = Histogram("embedops_batch_texts", "Texts encoded in one model call.",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self._shown: dict[str, tuple[str, str | None, float]] = {}

    def observe_batch(self, requests: int, texts: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_texts.observe(texts)

    def show_targets(self, targets: dict[str, tuple[str, str | None, float]]) -> None:
        """``{alias: (stable index, canary index or None, canary percent)}`` as gauges; an alias that
        moved no longer shows its old index."""
        if targets == self._shown:
            return
        self.target.clear()
        self.canary.clear()
        for alias, (stable, canary, percent) in targets.items():
            self.target.labels(alias, stable).set(1)
            if canary:
                self.canary.labels(alias, canary).set(percent)
        self._shown = dict(targets)

    def show_agreement(self, agreement: dict[tuple[str, str], float]) -> None:
        self.agreement.clear()
        for (kind, alias), value in agreement.items():
            self.agreement.labels(kind, alias).set(value)


def endpoint_of(path: str) -> str:
    """The ``endpoint`` label of a request path (see :data:`ENDPOINTS`)."""
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    if path.startswith("/v1/models/"):
        return "models"
    if path in ("/", "/favicon.ico") or path.startswith("/ui/"):
        return "dashboard"
    if path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect") or path.startswith("/static-offline-docs/"):
        return "docs"
    return "other"


class RequestCounter:
    """ASGI middleware: every HTTP request counted by endpoint and the status it was answered with
    (``embedops_requests_total``), errors and refusals included, whoever answered them."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}  # what an exception that escapes every handler becomes
        start = time.perf_counter()

        async def noted(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            labels = (endpoint_of(scope.get("path", "")), str(status["code"]))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.http_seconds.labels(*labels).observe(time.perf_counter() - start)
