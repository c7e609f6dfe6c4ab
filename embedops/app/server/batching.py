"""Dynamic batching of the server's query encoding: concurrent requests for one encoder are encoded
together, in one call, instead of each on its own thread.

A request's texts join the encoder's queue and the request awaits its own vectors on the event loop
(no thread is held while it waits). One drain task per encoder runs at a time: it takes what has
queued, up to ``max_tokens`` (estimated: characters / 4, capped at the encoder's token limit) and
``max_texts``, encodes it in one call on a worker thread, hands each request its rows, and goes on
while anything is queued. Requests that arrive while a batch encodes form the next batch, so a lone
client waits for nobody and many clients share each model call, as Infinity and
text-embeddings-inference batch. ``max_wait_s`` (default 0) holds a batch back that long for more
requests when it is not full.

A batch holds one encoder's requests only, and each request is routed to its index before it
queues, so every response still comes wholly from one index.

Searches are batched the same way (:class:`SearchBatcher`, one per open index): the query vectors
of concurrent requests of one index go to LanceDB as one query (32 searches of 5,183 vectors: 22 ms
together against 214 ms one by one, docs/BENCHMARKS.md), each request getting its own rows, cut
to its own ``k``.

>>> batcher = EncodeBatcher(encoder.encode, max_tokens=8192)   # doctest: +SKIP
>>> vectors = await batcher.encode(["how do I roll back"])      # doctest: +SKIP
>>> hits = await SearchBatcher(reader.search_vectors).search(vectors, k=10)   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

DEFAULT_MAX_TOKENS = 8192
DEFAULT_MAX_TEXTS = 256
DEFAULT_MAX_QUERIES = 64  # query vectors in one LanceDB search
CHARS_PER_TOKEN = 4  # a WordPiece or BPE token of English text is about 4 characters


@dataclass
class _Queued:
    inputs: list  # a request's texts to encode, or its query vectors to search
    tokens: int  # what it weighs against the batch's budget
    future: asyncio.Future
    k: int = 0  # hits per query, for a search


@dataclass(frozen=True)
class BatchStats:
    """What the batcher has done: model calls made, requests and texts they carried."""

    calls: int = 0
    requests: int = 0
    texts: int = 0


class _Batcher:
    """The queue and drain loop that :class:`EncodeBatcher` and :class:`SearchBatcher` share: a
    subclass says what one batch's call is (:meth:`_call`, on a worker thread) and what each
    request gets of its result (:meth:`_share`)."""

    def __init__(self, *, max_tokens: int, max_texts: int, max_wait_s: float,
                 on_batch: Callable[[int, int], None] | None = None):
        if max_tokens < 1 or max_texts < 1 or max_wait_s < 0:
            raise ValueError("a batch needs max_tokens >= 1, max_texts >= 1 and max_wait_s >= 0")
        self.max_tokens, self.max_texts, self.max_wait_s = max_tokens, max_texts, max_wait_s
        self._on_batch = on_batch
        self._queue: deque[_Queued] = deque()
        self._draining = False
        self._task: asyncio.Task | None = None
        self._queued_tokens = 0
        self._queued_texts = 0
        self.stats = BatchStats()

    async def _submit(self, item: _Queued):
        loop = asyncio.get_running_loop()
        self._queue.append(item)
        self._queued_tokens += item.tokens
        self._queued_texts += len(item.inputs)
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())  # referenced: the loop keeps only weak references
        return await item.future

    def _call(self, batch: list[_Queued]):
        raise NotImplementedError

    def _share(self, item: _Queued, rows):
        return rows

    def _full(self) -> bool:
        return self._queued_tokens >= self.max_tokens or self._queued_texts >= self.max_texts

    def _take(self) -> list[_Queued]:
        """The next batch: queued requests in order, while they fit (the first one always)."""
        batch: list[_Queued] = []
        tokens = texts = 0
        while self._queue:
            head = self._queue[0]
            if batch and (tokens + head.tokens > self.max_tokens or texts + len(head.inputs) > self.max_texts):
                break
            self._queue.popleft()
            self._queued_tokens -= head.tokens
            self._queued_texts -= len(head.inputs)
            if head.future.done():  # its client went away while it queued
                continue
            batch.append(head)
            tokens += head.tokens
            texts += len(head.inputs)
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.max_wait_s and not self._full():
                    await asyncio.sleep(self.max_wait_s)
                batch = self._take()
                if batch:
                    await self._run(batch)
        finally:
            self._draining = False

    async def _run(self, batch: list[_Queued]) -> None:
        inputs = sum(len(item.inputs) for item in batch)
        try:
            results = await anyio.to_thread.run_sync(self._call, batch)
        except Exception as exc:  # every request of the batch gets the error; the next batch runs
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.stats = BatchStats(self.stats.calls + 1, self.stats.requests + len(batch), self.stats.texts + inputs)
        if self._on_batch is not None:
            self._on_batch(len(batch), inputs)
        start = 0
        for item in batch:
            rows = results[start: start + len(item.inputs)]
            start += len(item.inputs)
            if not item.future.done():
                item.future.set_result(self._share(item, rows))


class EncodeBatcher(_Batcher):
    """Encodes concurrent requests of one encoder together (see the module's docstring).

    ``encode``: the encoder's ``encode(texts) -> (n, dim) array``, called on a worker thread.
    ``max_tokens``, ``max_texts``: the bounds of one batch (a single request larger than them is
    still encoded, alone). ``max_length``: the encoder's token limit, which caps a text's estimate.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], *, max_tokens: int = DEFAULT_MAX_TOKENS,
                 max_texts: int = DEFAULT_MAX_TEXTS, max_wait_s: float = 0.0, max_length: int | None = None,
                 on_batch: Callable[[int, int], None] | None = None):
        super().__init__(max_tokens=max_tokens, max_texts=max_texts, max_wait_s=max_wait_s, on_batch=on_batch)
        self._encode = encode
        self.max_length = max_length

    def estimate_tokens(self, text: str) -> int:
        tokens = len(text) // CHARS_PER_TOKEN + 2  # and [CLS], [SEP]
        return min(tokens, self.max_length) if self.max_length else tokens

    async def encode(self, texts: list[str]) -> np.ndarray:
        """``texts``' vectors, in order, encoded with whatever else is queued for this encoder."""
        if not texts:
            raise ValueError("nothing to encode")
        item = _Queued(list(texts), sum(self.estimate_tokens(t) for t in texts), asyncio.get_running_loop().create_future())
        return await self._submit(item)

    def _call(self, batch: list[_Queued]) -> np.ndarray:
        return self._encode([t for item in batch for t in item.inputs])


class SearchBatcher(_Batcher):
    """Searches the query vectors of concurrent requests of one index in one LanceDB query.

    ``search``: the index's ``search_vectors(vectors, k) -> [hits per vector]``, called on a worker
    thread with the largest ``k`` of the batch; each request gets its rows cut to its own ``k``.
    ``max_queries``: query vectors per batch (a larger request is still searched, alone).
    """

    def __init__(self, search: Callable[[np.ndarray, int], list], *, max_queries: int = DEFAULT_MAX_QUERIES,
                 max_wait_s: float = 0.0):
        super().__init__(max_tokens=max_queries, max_texts=max_queries, max_wait_s=max_wait_s)
        self._search = search

    async def search(self, vectors: np.ndarray, k: int) -> list:
        """The ``k`` best hits of each of ``vectors``, searched with whatever else is queued here."""
        if len(vectors) == 0:
            raise ValueError("nothing to search")
        rows = list(np.asarray(vectors, dtype=np.float32))
        return await self._submit(_Queued(rows, len(rows), asyncio.get_running_loop().create_future(), k))

    def _call(self, batch: list[_Queued]) -> list:
        return self._search(np.vstack([v for item in batch for v in item.inputs]), max(item.k for item in batch))

    def _share(self, item: _Queued, rows: list) -> list:
        return [hits[: item.k] for hits in rows]


@dataclass(frozen=True)
class BatchSettings:
    """How the server batches query encoding (``embedops serve --batch-tokens/--batch-wait-ms``)."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    max_texts: int = DEFAULT_MAX_TEXTS
    max_wait_ms: float = 0.0
    max_queries: int = DEFAULT_MAX_QUERIES  # query vectors per LanceDB search (``--batch-queries``; 1: one request's)

    def __post_init__(self):
        if self.max_tokens < 1 or self.max_texts < 1 or self.max_queries < 1:
            raise ValueError(f"a batch needs at least one token, one text and one query (got {self.max_tokens} "
                             f"tokens, {self.max_texts} texts, {self.max_queries} queries)")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"the batch wait must be between 0 and 1000 ms (got {self.max_wait_ms})")


class Batchers:
    """One :class:`EncodeBatcher` per encoder object and one :class:`SearchBatcher` per open index,
    made when first asked for and dropped with them (an index closed after a switch takes its
    batchers with it)."""

    def __init__(self, settings: BatchSettings | None = None, on_batch: Callable[[int, int], None] | None = None):
        self.settings = settings or BatchSettings()
        self._on_batch = on_batch
        self._by_encoder: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._by_index: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def searches_of(self, reader) -> SearchBatcher:
        """The search batcher of ``reader`` (an open :class:`~embedops.index.IndexReader`)."""
        batcher = self._by_index.get(reader)
        if batcher is None:
            batcher = SearchBatcher(_weak_call(reader, "search_vectors"), max_queries=self.settings.max_queries,
                                    max_wait_s=self.settings.max_wait_ms / 1000)
            self._by_index[reader] = batcher
        return batcher

    def of(self, encoder) -> EncodeBatcher:
        batcher = self._by_encoder.get(encoder)
        if batcher is None:
            s = self.settings
            batcher = EncodeBatcher(_weak_call(encoder, "encode"), max_tokens=s.max_tokens, max_texts=s.max_texts,
                                    max_wait_s=s.max_wait_ms / 1000, max_length=getattr(encoder, "max_length", None),
                                    on_batch=self._on_batch)
            self._by_encoder[encoder] = batcher
        return batcher


def _weak_call(owner, method: str) -> Callable:
    """``owner.method`` without keeping ``owner`` (an encoder or an index reader) alive: the batcher
    is the value of a weak key."""
    ref = weakref.ref(owner)

    def call(*args):
        alive = ref()
        if alive is None:
            raise RuntimeError("the encoder or index of this request was closed (the alias moved); ask again")
        return getattr(alive, method)(*args)

    return call
