"""``embedops serve``: an HTTP search and embedding service (FastAPI on uvicorn) that follows aliases.

Endpoints:

* ``POST /v1/search`` ``{"query": str | "queries": [str], "k": int, "alias"?: str}``: hits (id, score,
  title) with the index id and model ref that answered;
* ``POST /v1/embeddings``: OpenAI-compatible (``model`` names an alias or a model ref);
* ``GET /healthz`` (the process is up), ``GET /readyz`` (the served alias's encoder and index are
  open), ``GET /metrics`` (Prometheus: requests, errors, latency per index, alias targets).

**Following aliases without a restart.** At most once a second (``check_interval``) a request reads
the alias's head (one small read of its compare-and-swap log). When it moved, the new index and its
encoder are opened *before* the switch, and the previous one stays open for an instant rollback.
Each request takes one :class:`~embedops.index.IndexReader` at its start and uses only that, so a
response never mixes two indexes and in-flight requests finish on the index they started on. When
the store cannot be read, the server keeps serving the index it has open (and says so in ``/readyz``).

>>> app = create_app(Registry(Store.open("./embedops-store")))     # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, model_validator

from embedops.errors import EmbedopsError, NotFoundError
from embedops.index import IndexReader
from embedops.registry import Registry, Searcher, open_encoder

MAX_K = 1000
MAX_QUERIES = 256


class SearchRequest(BaseModel):
    query: str | None = Field(None, description="One query (or give `queries`).")
    queries: list[str] | None = Field(None, max_length=MAX_QUERIES, description="Several queries, answered by one index.")
    k: int = Field(10, ge=1, le=MAX_K, description="Hits per query.")
    alias: str | None = Field(None, description="Alias whose index answers (default: the server's alias).")

    @model_validator(mode="after")
    def _one_of(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' and 'queries'")
        return self

    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``/v1/embeddings`` request (``encoding_format`` float only)."""

    input: str | list[str] = Field(..., description="Text or texts to embed.")
    model: str = Field("production", description="An alias (its index's model) or a model ref NAME@N.")
    encoding_format: str = Field("float", pattern="^float$")


@dataclass
class _Served:
    """The index an alias is served from, opened, and when the alias was last checked."""

    reader: IndexReader
    checked: float


@dataclass
class AliasFollower:
    """Opens the index an alias points at and switches to a new one only once it is open."""

    searcher: Searcher
    check_interval: float = 1.0
    _served: dict[str, _Served] = field(default_factory=dict)
    _warm: dict[str, IndexReader] = field(default_factory=dict)  # index id -> reader, for instant switches back
    _lock: threading.Lock = field(default_factory=threading.Lock)
    store_error: str | None = None

    def reader(self, alias: str) -> IndexReader:
        """The reader to answer one request with (one per request: never two indexes in a response)."""
        now = time.monotonic()
        served = self._served.get(alias)
        if served is not None and now - served.checked < self.check_interval:
            return served.reader
        with self._lock:
            served = self._served.get(alias)
            if served is not None and now - served.checked < self.check_interval:
                return served.reader
            try:
                index_id = self.searcher.registry.aliases.current(alias)
                self.store_error = None
            except NotFoundError:
                raise
            except Exception as exc:  # the store is unreachable: keep serving what is open
                self.store_error = f"{type(exc).__name__}: {exc}"
                if served is None:
                    raise
                self._served[alias] = _Served(served.reader, now)
                return served.reader
            if served is not None and served.reader.index_id == index_id:
                self._served[alias] = _Served(served.reader, now)
                return served.reader
            reader = self._warm.get(index_id) or self.searcher.open(index_id)  # opened before the switch
            self._warm[index_id] = reader
            self._served[alias] = _Served(reader, now)
            return reader

    def targets(self) -> dict[str, str]:
        return {alias: s.reader.index_id for alias, s in self._served.items()}


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # per app: no global state
        self.requests = Counter("embedops_requests", "Requests by endpoint and HTTP status.", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("embedops_request_seconds", "Request latency by endpoint and answering index.",
                                 ["endpoint", "index"], registry=self.registry)
        self.target = Gauge("embedops_alias_target", "1 for the index each alias is served from.", ["alias", "index"],
                            registry=self.registry)
        self._shown: dict[str, str] = {}

    def show_targets(self, targets: dict[str, str]) -> None:
        if targets != self._shown:
            self.target.clear()  # an alias that moved no longer shows its old index
            for alias, index_id in targets.items():
                self.target.labels(alias, index_id).set(1)
            self._shown = dict(targets)


def create_app(registry: Registry, *, alias: str = "production", check_interval: float = 1.0) -> FastAPI:
    """The ASGI app serving ``registry``'s aliases (``alias`` by default)."""
    follower = AliasFollower(Searcher(registry), check_interval)
    metrics = _Metrics()
    app = FastAPI(title="embedops", description="Search and embeddings from the indexes behind aliases.",
                  version="1")

    def serve(alias_name: str) -> IndexReader:
        try:
            reader = follower.reader(alias_name)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except EmbedopsError as exc:
            raise HTTPException(409, str(exc)) from None
        except Exception as exc:
            raise HTTPException(503, f"the store cannot be read and no index is open yet: {exc}") from None
        metrics.show_targets(follower.targets())
        return reader

    @app.post("/v1/search", summary="Search the index an alias points at")
    def search(request: SearchRequest) -> dict:
        start = time.perf_counter()
        reader = serve(request.alias or alias)
        texts = request.texts()
        hits = [follower.searcher.with_titles(reader.record, h) if h else h for h in reader.search(texts, request.k)]
        seconds = time.perf_counter() - start
        metrics.requests.labels("search", "200").inc()
        metrics.latency.labels("search", reader.index_id).observe(seconds)
        results = [{"query": t, "hits": [{"id": h.id, "score": h.score, "title": h.title} for h in hs]} for t, hs in zip(texts, hits)]
        return {"index_id": reader.index_id, "model_ref": reader.record.model_ref, "alias": request.alias or alias,
                "latency_ms": 1000 * seconds, "results": results}

    @app.post("/v1/embeddings", summary="Embed texts (OpenAI-compatible)")
    def embeddings(request: EmbeddingsRequest) -> dict:
        start = time.perf_counter()
        texts = [request.input] if isinstance(request.input, str) else request.input
        if "@" in request.model:
            try:
                encoder = open_encoder(registry, request.model)
            except NotFoundError as exc:
                raise HTTPException(404, str(exc)) from None
            model_ref, index_label = registry.models.get(request.model).ref, "-"
        else:
            reader = serve(request.model)
            encoder, model_ref, index_label = reader.encoder, reader.record.model_ref, reader.index_id
        vectors = encoder.encode(list(texts))
        metrics.requests.labels("embeddings", "200").inc()
        metrics.latency.labels("embeddings", index_label).observe(time.perf_counter() - start)
        tokens = sum(len(t.split()) for t in texts)
        return {"object": "list", "model": model_ref,
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.get("/healthz", summary="The process is up")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The served alias's index and encoder are open")
    def readyz(response: Response) -> dict:
        try:
            reader = follower.reader(alias)
        except Exception as exc:
            response.status_code = 503
            return {"ready": False, "alias": alias, "reason": str(exc)}
        body = {"ready": True, "alias": alias, "index_id": reader.index_id, "model_ref": reader.record.model_ref}
        if follower.store_error:
            body["store_error"] = follower.store_error  # still serving the open index
        return body

    @app.get("/metrics", summary="Prometheus metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.state.follower = follower
    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` worker processes: store from ``$EMBEDOPS_STORE``, alias from
    ``$EMBEDOPS_SERVE_ALIAS``."""
    import os

    from embedops.store import Store, resolve_store_uri

    return create_app(Registry(Store.open(resolve_store_uri(None), create=False)),
                      alias=os.environ.get("EMBEDOPS_SERVE_ALIAS", "production"))
