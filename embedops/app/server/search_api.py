"""``POST /v1/search``: the hits of the index an alias points at (or its canary), with the index,
model and route that answered; a share mirrored to a second index off the request path.

A canary answers its share of the requests, sticky by client key (the ``client`` field, else the
``X-Embedops-Client`` header, else the query text). The request is routed to one index before its
texts are encoded (in a batch with other requests of that index's encoder), so every response
comes wholly from one index.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from fastapi import APIRouter, Header, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator

from embedops.app.server.background import age
from embedops.app.server.follower import AliasView
from embedops.app.server.limits import check_texts
from embedops.app.server.mirror import MirrorJob
from embedops.app.server.state import ServerState
from embedops.index import IndexReader
from embedops.registry import Searcher

MAX_K = 1000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SNIPPET = 200  # characters of a hit's text in a response


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


class SearchHit(BaseModel):
    id: str = Field(description="The document's id in the corpus.")
    score: float = Field(description="Cosine similarity of the query and the document.")
    title: str = Field(description="The document's title, else the start of its text.")
    snippet: str = Field(description=f"The first {SNIPPET} characters of the document's text.")


class QueryResult(BaseModel):
    query: str
    hits: list[SearchHit] = Field(description="Best first.")


class BridgeInfo(BaseModel):
    adapter_id: str = Field(description="The query adapter (also the response's index_id).")
    index_id: str = Field(description="The old index whose vectors were searched.")
    index_model_ref: str = Field(description="The model that embedded the old index's documents.")
    kind: str = Field(description="The adapter's kind: procrustes, affine or mlp.")
    new_index: str | None = Field(None, description="A progressive bridge: the new model's index being built, "
                                  "whose documents were searched in the new space.")
    new_share: float | None = Field(None, description="A progressive bridge: the share of the corpus answered "
                                    "from new_index (the rest through the adapter).")


class SearchResponse(BaseModel):
    index_id: str = Field(description="The index that answered (the whole response comes from it), or the "
                                      "adapter id of the bridge that did.")
    model_ref: str = Field(description="The model version that embedded the queries, NAME@N.")
    alias: str
    route: str = Field(description="stable, or canary when the alias's canary answered.")
    latency_ms: float
    results: list[QueryResult] = Field(description="One per query, in the order asked.")
    bridge: BridgeInfo | None = Field(None, description="Set when a bridge answered: model_ref's queries mapped "
                                      "by an adapter into an old index's space (issue #35).")


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


def search_router(state: ServerState) -> APIRouter:
    """``POST /v1/search`` over ``state``'s aliases."""
    router = APIRouter()
    settings, signals, metrics = state.settings, state.signals, state.metrics
    snippets = _Snippets(state.searcher)

    def mirror_after(request_alias: str, view: AliasView, route: str, reader: IndexReader, texts: list[str],
                     k: int, hits, ms: float) -> None:
        policy = settings.rollback
        other, kind = None, None
        if route == "canary":
            other, kind = view.stable, "canary"
        elif view.canary is None and view.previous is not None and age(view.state.ts, state.utc_now()) <= policy.watch:
            other, kind = view.previous, "previous"
        if other is not None and state.chance.random() < policy.compare_fraction:
            state.mirror.submit(MirrorJob(kind, request_alias, texts, k, reader, hits, ms, other))
        if settings.shadow_alias and request_alias == settings.alias and settings.shadow_alias != request_alias:
            shadow = state.follower.opened(settings.shadow_alias)
            if shadow is not None and shadow.stable.index_id != reader.index_id \
                    and state.chance.random() < settings.shadow_fraction:
                state.mirror.submit(MirrorJob("shadow", request_alias, texts, k, reader, hits, ms, shadow.stable))

    def titles(reader: IndexReader, hits) -> dict:
        """On a worker thread: the hits' titles and snippets."""
        try:
            return snippets.get(reader.record, [h.id for hs in hits for h in hs])
        except Exception:  # the corpus table cannot be read now: hits without titles rather than no hits
            return {}

    @router.post("/v1/search", summary="Search the index an alias points at (or its canary)",
                 response_model=SearchResponse)
    async def search(request: SearchRequest,
                     x_embedops_client: str | None = Header(None, description="Sticky canary routing key.")) -> dict:
        with state.in_flight:  # mirrored work waits until no request is being answered
            return await answer(request, x_embedops_client)

    async def answer(request: SearchRequest, x_embedops_client: str | None) -> dict:
        start = time.perf_counter()
        alias_name = request.alias or settings.alias
        texts = request.texts()
        check_texts(texts, "query" if request.query is not None else "queries", settings.limits)
        view = await state.open_view(alias_name)
        # routed before it queues: the batch encodes with this index's encoder, so the answer is its own
        reader, route = view.route(request.client or x_embedops_client or "\n".join(texts))
        try:
            vectors = await state.batchers.of(reader.encoder).encode(texts)
            hits = await state.batchers.searches_of(reader).search(vectors, request.k)  # with concurrent ones
            searched = time.perf_counter()
            docs = await run_in_threadpool(titles, reader, hits)
        except Exception as exc:
            ms = 1000 * (time.perf_counter() - start)
            signals.request(alias_name, reader.index_id, ms, ok=False)
            metrics.errors.labels(alias_name, reader.index_id).inc()
            raise HTTPException(500, f"index {reader.index_id} failed to answer: {type(exc).__name__}: {exc}") from None
        ms = 1000 * (searched - start)
        signals.request(alias_name, reader.index_id, ms, ok=True)
        mirror_after(alias_name, view, route, reader, texts, request.k, hits, ms)
        results = [{"query": t, "hits": [{"id": h.id, "score": h.score, "title": docs.get(h.id, ("", ""))[0],
                                          "snippet": docs.get(h.id, ("", ""))[1]} for h in hs]}
                   for t, hs in zip(texts, hits)]
        seconds = time.perf_counter() - start
        metrics.latency.labels("search", reader.index_id).observe(seconds)
        return {"index_id": reader.index_id, "model_ref": reader.record.model_ref, "alias": alias_name,
                "route": route, "latency_ms": 1000 * seconds, "results": results,
                "bridge": reader.bridge_info}

    return router


def _title(doc: tuple[str, str]) -> str:
    title, text = doc
    return title or text[:80]
