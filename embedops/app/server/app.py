"""The ASGI app of ``embedops serve`` (FastAPI): endpoints, and the background loop that follows
aliases, mirrors queries and applies the rollback policy.

Endpoints:

* ``POST /v1/search`` ``{"query": str | "queries": [str], "k": int, "alias"?: str, "client"?: str}``:
  hits (id, score, title, snippet) with the index id, model ref and route (stable or canary) that
  answered. A canary answers its share of the requests, sticky by client key (the ``client`` field,
  else the ``X-Embedops-Client`` header, else the query text).
* ``POST /v1/embeddings``, ``GET /v1/models``: OpenAI-compatible (:mod:`.openai_api`); ``model``
  names an alias (its stable index's model, never the canary's: vectors stay comparable with the
  index they are searched against) or a model ref ``NAME@N``. Errors under ``/v1/`` come in
  OpenAI's shape.
* ``GET /healthz`` (the process is up), ``GET /readyz`` (the alias's encoder and index are open;
  ``writes`` says whether the store takes writes), ``GET /metrics`` (Prometheus).

>>> app = create_app(Registry(Store.open("./embedops-store")), ServeSettings(shadow_alias="shadow"))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import random
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import anyio.to_thread
from fastapi import FastAPI, Header, HTTPException, Response
from fastapi_offline import FastAPIOffline
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, model_validator

from embedops.app.dashboard import UiAuth, dashboard_router
from embedops.app.dashboard.auth import SESSION_TTL
from embedops.app.dashboard.routes import LOOPBACK_HOSTS
from embedops.app.server.follower import AliasFollower, AliasView
from embedops.app.server.limits import BodyLimit, RequestLimits, check_texts
from embedops.app.server.metrics import RequestCounter, ServeMetrics
from embedops.app.server.mirror import InFlight, Mirror, MirrorJob
from embedops.app.server.notify import AliasChanges
from embedops.app.server.openai_api import EmbeddingTarget, install_openai_errors, openai_router
from embedops.app.server.rollback import RollbackPolicy, Verdict, judge
from embedops.app.server.signals import LiveSignals
from embedops.encoding.encoder import RUNTIMES
from embedops.errors import AliasConflictError, EmbedopsError, NotFoundError, UsageError
from embedops.index import IndexReader
from embedops.registry import Registry, Searcher

MAX_K = 1000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SNIPPET = 200  # characters of a hit's text in a response

log = logging.getLogger("embedops.serve")


@dataclass(frozen=True)
class ServeSettings:
    """How one server runs: the alias it serves by default, how often it reads alias heads, live
    shadow traffic, and its rollback policy."""

    alias: str = "production"
    check_interval: float = 1.0
    shadow_alias: str | None = None
    shadow_fraction: float = 0.1
    rollback: RollbackPolicy = field(default_factory=RollbackPolicy)
    mirror_queue: int = 256
    flush_interval: float = 2.0
    write_probe_interval: float = 5.0
    # Seconds between compactions of the registry's tables (their one-row writes fragment them and
    # slow every read, the dashboard's pages first); 0: never. The first runs soon after start.
    compact_interval: float = 600.0
    # Searches answered at once (anyio's default is 40 threads). The encoder already uses every core
    # for one query, so more threads add no throughput; they only take the GIL from the event loop,
    # which then answers /readyz and new connections late under load. 0: anyio's default.
    threads: int = field(default_factory=lambda: max(4, 2 * (os.cpu_count() or 1)))
    # Which runtime embeds queries (see choose_runtime). ONNX Runtime, not "auto"'s OpenVINO: a
    # server encodes single queries, where the two are level (docs/BENCHMARKS.md), and OpenVINO
    # froze loaded serve processes (every thread waiting inside it) 4 times in about 60 load runs.
    runtime: str = "onnxruntime"
    # The guard policy file a dashboard promotion is judged under (default ./embedops.toml), as
    # `embedops promote --policy` would; its [serve.rollback] section is `rollback` above.
    policy_file: str | None = None
    # What one request may carry (413 past it; see embedops.app.server.limits).
    limits: RequestLimits = field(default_factory=RequestLimits)
    # Host names the dashboard answers (400 for others: no DNS rebinding); the CLI adds its bind address.
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    session_ttl: float = SESSION_TTL  # seconds a dashboard sign-in lasts

    def __post_init__(self):
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        if isinstance(self.limits, dict):  # from $EMBEDOPS_SERVE_SETTINGS
            object.__setattr__(self, "limits", RequestLimits(**self.limits))
        if self.runtime not in RUNTIMES:
            raise UsageError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if not 0 <= self.shadow_fraction <= 1:
            raise UsageError(f"--shadow-fraction must be between 0 and 1 (got {self.shadow_fraction})")
        if self.check_interval <= 0:
            raise UsageError(f"the alias check interval must be positive (got {self.check_interval})")


class SearchRequest(BaseModel):
    query: str | None = Field(None, description="One query (or give `queries`).")
    queries: list[str] | None = Field(None, min_length=1, description="Several queries, answered by one index "
                                      "(at most the server's --max-inputs).")
    k: int = Field(10, ge=1, le=MAX_K, description="Hits per query.")
    alias: str | None = Field(None, pattern=NAME_PATTERN,
                              description="Alias whose index answers (default: the server's alias).")
    client: str | None = Field(None, max_length=256, description="Sticky canary routing key (default: the "
                               "X-Embedops-Client header, else the query text).")

    @model_validator(mode="after")
    def _one_of(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' and 'queries'")
        return self

    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class _Snippets:
    """Titles and snippets of hits by (corpus, corpus version of the index, id): a bounded LRU, so a
    document asked for again costs no read of the corpus table (7 ms a response on 1,000 SciFact
    abstracts, docs/BENCHMARKS.md). Keyed by the corpus version the index was built at, so a response
    shows the text its vectors were made from."""

    def __init__(self, searcher: Searcher, size: int = 20_000):
        self.searcher, self.size = searcher, size
        self._lock = threading.Lock()
        self._docs: OrderedDict[tuple[str, int | None, str], tuple[str, str]] = OrderedDict()

    def get(self, rec, ids: list[str]) -> dict[str, tuple[str, str]]:
        version = rec.settings.corpus_version
        out, missing = {}, []
        with self._lock:
            for i in ids:
                doc = self._docs.get((rec.corpus, version, i))
                if doc is None:
                    missing.append(i)
                else:
                    self._docs.move_to_end((rec.corpus, version, i))
                    out[i] = doc
        if missing:
            read = {i: (_title(doc), doc[1][:SNIPPET]) for i, doc in self.searcher.documents(rec, missing).items()}
            out.update(read)
            with self._lock:
                for i, doc in read.items():
                    self._docs[(rec.corpus, version, i)] = doc
                while len(self._docs) > self.size:
                    self._docs.popitem(last=False)
        return out


@dataclass(frozen=True)
class Judgement:
    """One look of the rollback judge at an alias: what it judged (``kind``: canary or previous), on
    how many requests and mirrored comparisons, the verdict (None: within limits) and whether it acted."""

    alias: str
    kind: str
    index_id: str
    requests: int
    comparisons: int
    verdict: Verdict | None
    acted: bool


class _Background:
    """The server's loop: follow aliases, update gauges, judge canaries and watched promotions, probe
    that the store takes writes. One thread; nothing on the request path waits for it."""

    def __init__(self, registry: Registry, settings: ServeSettings, follower: AliasFollower, mirror: Mirror,
                 signals: LiveSignals, metrics: ServeMetrics, server: str, utc_now=None):
        self.registry, self.settings, self.follower = registry, settings, follower
        self.utc_now = utc_now or _utc_now
        self.mirror, self.signals, self.metrics = mirror, signals, metrics
        self.by = f"embedops serve ({server})"
        self.write_error: str | None = None
        self._acted: dict[str, int] = {}  # alias -> the record seq this server acted on
        self._retry_at = 0.0
        self._probed = 0.0
        self._followed = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._changes: AliasChanges | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="embedops-follow", daemon=True)
        self._thread.start()
        if self.settings.compact_interval > 0:  # its own thread: a big compaction must not delay a switch
            threading.Thread(target=self._compact, name="embedops-compact", daemon=True).start()

    def _compact(self) -> None:
        delay = min(10.0, self.settings.compact_interval)
        while not self._stop.wait(delay):
            if self.write_error is None:  # a read-only store: nothing to write, nothing to compact
                done = self.registry.store.compact_tables()
                if done:
                    log.info("embedops serve: compacted %s", ", ".join(done))
            delay = self.settings.compact_interval

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._changes is not None:
            self._changes.stop()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        step = min(self.settings.check_interval, 0.25)
        while not self._stop.is_set():
            poked = self._wake.wait(step)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick(poked=poked)
            except Exception:  # never let the loop die; the next tick tries again
                log.exception("embedops serve: background step failed")

    @property
    def notified(self) -> bool:
        """True while alias changes wake this loop (a local store with a file watcher running)."""
        return self._changes is not None and self._changes.watching

    def _watch_alias_changes(self) -> None:
        store = self.registry.store
        if store.objects is None and self._changes is None and (store.root / "refs" / "aliases").is_dir():
            changes = AliasChanges(store.root / "refs" / "aliases", self._wake)
            if changes.start():
                self._changes = changes

    def tick(self, now: float | None = None, *, poked: bool = False) -> None:
        now = time.monotonic() if now is None else now
        if self._changes is None:
            self._watch_alias_changes()
        if now - self._followed >= self.settings.check_interval:
            self._followed = now
            for alias in (self.settings.alias, self.settings.shadow_alias):
                if alias and alias not in self.follower.views():
                    with contextlib.suppress(Exception):  # not set yet, or the store is down: next time
                        self.follower.view(alias)
        self.follower.refresh(force=poked)  # a published alias record: read the heads now
        self.metrics.show_targets(self.follower.targets())
        self.metrics.show_agreement(self.signals.agreement(since=now - self.settings.rollback.window))
        self.judge(now)
        if now - self._probed >= self.settings.write_probe_interval:
            self._probed = now
            self.probe_writes()

    def judge(self, now: float) -> list[Judgement]:
        """Abort a canary or roll a watched promotion back when its signals cross the policy; returns
        what it judged (``now``: monotonic seconds, as the signals are stamped)."""
        policy = self.settings.rollback
        if now < self._retry_at:
            return []
        out = []
        for alias, view in self.follower.views().items():
            if self._acted.get(alias) == view.state.seq:
                continue
            if view.canary is not None:
                judged, other, kind, what = view.canary, view.stable, "canary", "canary"
            elif view.previous is not None and _age(view.state.ts, self.utc_now()) <= policy.watch:
                judged, other, kind, what = view.stable, view.previous, "previous", "production"
            else:
                continue
            since = max(view.since, now - policy.window)
            requests = self.signals.requests(alias, judged.index_id, since=since)
            comparisons = self.signals.comparisons(kind, alias, judged.index_id, other.index_id, since=since)
            verdict = judge(policy, what, requests=requests, comparisons=comparisons, window=policy.window)
            acted = verdict is not None and policy.enabled
            if acted:
                self._act(alias, view, kind, judged.index_id, verdict.reason)
            out.append(Judgement(alias, kind, judged.index_id, len(requests), len(comparisons), verdict, acted))
        return out

    def _act(self, alias: str, view: AliasView, kind: str, index_id: str, reason: str) -> None:
        action = "canary.abort" if kind == "canary" else "rollback"
        try:
            if kind == "canary":
                self.registry.abort_canary(alias, reason=reason, expect_canary=index_id, by=self.by, automatic=True)
            else:
                self.registry.rollback(alias, reason=reason, expect=index_id, by=self.by, automatic=True)
        except (AliasConflictError, UsageError):
            pass  # another server (or a person) moved the alias first: follow it
        except Exception as exc:  # the store does not take writes now: try again in a few seconds
            self.write_error = f"cannot write the automatic {action} of {alias}: {type(exc).__name__}: {exc}"
            self.metrics.writable.set(0)
            self._retry_at = time.monotonic() + 5
            return
        else:
            self.metrics.automatic.labels(alias, action).inc()
            log.warning("embedops serve: %s of %s (%s): %s", action, alias, index_id, reason)
        self._acted[alias] = view.state.seq
        self.follower.refresh(force=True)

    def probe_writes(self) -> None:
        """On a local store, check that it takes writes (a private temporary file, created and removed)."""
        store = self.registry.store
        if store.objects is not None:
            return  # object storage: the last real write says
        folder = store.root / "refs" if (store.root / "refs").is_dir() else store.root
        try:
            fd, name = tempfile.mkstemp(prefix=".tmp-probe-", dir=folder)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            self.write_error = f"the store does not take writes: {type(exc).__name__}: {exc}"
            self.metrics.writable.set(0)
            return
        self.write_error = None
        if self.mirror.write_error is None:
            self.metrics.writable.set(1)

    def writes(self) -> dict:
        why = self.write_error or self.mirror.write_error
        return {"ready": why is None, "reason": why}


def create_app(registry: Registry, settings: ServeSettings | None = None, *, alias: str | None = None,
               check_interval: float | None = None, ui_token: str | None = None, utc_now=None) -> FastAPI:
    """The ASGI app serving ``registry``'s aliases (``settings.alias`` by default). ``alias`` and
    ``check_interval`` override those settings. The dashboard is at ``/``; ``ui_token`` (what
    ``$EMBEDOPS_UI_TOKEN`` gives `embedops serve`) allows its promote, rollback and canary abort.
    ``utc_now``: the wall clock a promotion's age is read with (tests inject one)."""
    utc_now = utc_now or _utc_now
    settings = settings or ServeSettings()
    if alias is not None:
        settings = replace(settings, alias=alias)
    if check_interval is not None:
        settings = replace(settings, check_interval=check_interval)
    server = f"{socket.gethostname()}:{os.getpid()}"
    searcher = Searcher(registry, runtime=settings.runtime, read_only=True)  # a server writes no export
    metrics = ServeMetrics()
    follower = AliasFollower(searcher, check_interval=settings.check_interval,
                             on_switch=lambda old, new: metrics.open_seconds.labels(new.alias).observe(new.opened_in))
    signals = LiveSignals()
    in_flight = InFlight()
    mirror = Mirror(registry.live, signals, metrics, server=server, queue_size=settings.mirror_queue,
                    flush_interval=settings.flush_interval, requests=in_flight)
    background = _Background(registry, settings, follower, mirror, signals, metrics, server, utc_now)
    snippets = _Snippets(searcher)
    chance = random.Random()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.threads:  # sync endpoints run on anyio's thread pool: bound it (see ServeSettings)
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        mirror.start()
        background.start()
        yield
        background.stop()
        mirror.stop()

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline
    # package's own files (under /static-offline-docs), never from a CDN
    app = FastAPIOffline(title="embedops", version="1", lifespan=lifespan,
                  description="Search and embeddings from the indexes behind aliases, with canaries, live shadow "
                              "traffic and automatic rollback. The dashboard is at /.")
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(RequestCounter, metrics=metrics)  # outermost: counts the body limit's 413s too
    app.include_router(dashboard_router(registry, auth=UiAuth(ui_token, session_ttl=settings.session_ttl),
                                        policy_file=settings.policy_file, allowed_hosts=settings.allowed_hosts))

    def view_of(alias_name: str) -> AliasView:
        try:
            return follower.view(alias_name)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except EmbedopsError as exc:
            raise HTTPException(409, str(exc)) from None
        except Exception as exc:
            raise HTTPException(503, f"the store cannot be read and no index of {alias_name!r} is open yet: "
                                     f"{type(exc).__name__}: {exc}") from None

    def mirror_after(request_alias: str, view: AliasView, route: str, reader: IndexReader, texts: list[str],
                     k: int, hits, ms: float) -> None:
        policy = settings.rollback
        other, kind = None, None
        if route == "canary":
            other, kind = view.stable, "canary"
        elif view.canary is None and view.previous is not None and _age(view.state.ts, utc_now()) <= policy.watch:
            other, kind = view.previous, "previous"
        if other is not None and chance.random() < policy.compare_fraction:
            mirror.submit(MirrorJob(kind, request_alias, texts, k, reader, hits, ms, other))
        if settings.shadow_alias and request_alias == settings.alias and settings.shadow_alias != request_alias:
            shadow = follower.views().get(settings.shadow_alias)
            if shadow is not None and shadow.stable.index_id != reader.index_id \
                    and chance.random() < settings.shadow_fraction:
                mirror.submit(MirrorJob("shadow", request_alias, texts, k, reader, hits, ms, shadow.stable))

    @app.post("/v1/search", summary="Search the index an alias points at (or its canary)")
    def search(request: SearchRequest,
               x_embedops_client: str | None = Header(None, description="Sticky canary routing key.")) -> dict:
        with in_flight:  # mirrored work waits until no request is being answered
            return answer(request, x_embedops_client)

    def answer(request: SearchRequest, x_embedops_client: str | None) -> dict:
        start = time.perf_counter()
        alias_name = request.alias or settings.alias
        texts = request.texts()
        check_texts(texts, "query" if request.query is not None else "queries", settings.limits)
        view = view_of(alias_name)
        reader, route = view.route(request.client or x_embedops_client or "\n".join(texts))
        try:
            hits = reader.search(texts, request.k)
        except Exception as exc:
            ms = 1000 * (time.perf_counter() - start)
            signals.request(alias_name, reader.index_id, ms, ok=False)
            metrics.errors.labels(alias_name, reader.index_id).inc()
            raise HTTPException(500, f"index {reader.index_id} failed to answer: {type(exc).__name__}: {exc}") from None
        ms = 1000 * (time.perf_counter() - start)
        signals.request(alias_name, reader.index_id, ms, ok=True)
        mirror_after(alias_name, view, route, reader, texts, request.k, hits, ms)
        try:
            docs = snippets.get(reader.record, [h.id for hs in hits for h in hs])
        except Exception:  # the corpus table cannot be read now: hits without titles rather than no hits
            docs = {}
        results = [{"query": t, "hits": [{"id": h.id, "score": h.score, "title": docs.get(h.id, ("", ""))[0],
                                          "snippet": docs.get(h.id, ("", ""))[1]} for h in hs]}
                   for t, hs in zip(texts, hits)]
        seconds = time.perf_counter() - start
        metrics.latency.labels("search", reader.index_id).observe(seconds)
        return {"index_id": reader.index_id, "model_ref": reader.record.model_ref, "alias": alias_name,
                "route": route, "latency_ms": 1000 * seconds, "results": results}

    def alias_target(alias_name: str) -> EmbeddingTarget:
        reader = view_of(alias_name).stable  # never the canary's: vectors stay comparable with the index
        return EmbeddingTarget(reader.encoder, reader.record.model_ref, reader.index_id)

    install_openai_errors(app)
    app.include_router(openai_router(registry, limits=settings.limits, metrics=metrics, alias_target=alias_target,
                                     runtime=settings.runtime, guard=lambda: in_flight))

    # healthz and readyz run on the event loop, not in the thread pool the searches queue for: under
    # load they still answer at once, and what readyz says is what the next search will use.
    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The served alias's index and encoder are open")
    async def readyz(response: Response) -> dict:
        try:
            view = follower.views().get(settings.alias) or await run_in_threadpool(follower.view, settings.alias)
        except Exception as exc:
            response.status_code = 503
            return {"ready": False, "alias": settings.alias, "reason": str(exc), "writes": background.writes()}
        body = {"ready": True, "alias": settings.alias, "index_id": view.stable.index_id,
                "model_ref": view.stable.record.model_ref, "provider": view.stable.encoder.provider,
                "writes": background.writes(),
                "record": {"seq": view.state.seq, "ts": view.state.ts, "switched_at": view.switched_at},
                "follows": {"check_interval": settings.check_interval, "file_events": background.notified}}
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

    @app.get("/metrics", summary="Prometheus metrics")
    def prometheus() -> Response:
        metrics.show_targets(follower.targets())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.state.follower = follower
    app.state.mirror = mirror
    app.state.background = background
    app.state.signals = signals
    app.state.settings = settings
    return app


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _age(ts: str, now: datetime.datetime) -> float:
    """Seconds from the alias record stamped ``ts`` (its wall-clock UTC timestamp) to ``now``: a
    promotion is watched for ``watch`` seconds after it happened, not after this server started."""
    return (now - datetime.datetime.fromisoformat(ts)).total_seconds()


def _title(doc: tuple[str, str]) -> str:
    title, text = doc
    return title or text[:80]
