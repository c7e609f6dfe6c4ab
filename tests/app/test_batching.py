"""Dynamic batching of query encoding (embedops.app.server.batching): concurrent requests share one
model call, each gets its own rows, a failed call fails only its own batch."""

import asyncio
import gc
import threading

import numpy as np
import pytest

from embedops.app.server.batching import Batchers, BatchSettings, EncodeBatcher


class GatedEncoder:
    """Encodes a text as [len, first char]; the first call waits until ``release`` is set, so
    requests queue up behind it as they would behind a busy model."""

    max_length = 512

    def __init__(self, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_on = fail_on

    def encode(self, texts):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.started.set()
            assert self.release.wait(10)
        if self.fail_on in texts:
            raise RuntimeError(f"cannot encode {self.fail_on!r}")
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


async def _wait_for(event: threading.Event):
    """Until the encoder's worker thread sets ``event`` (a condition polled, not a timed guess)."""
    while not event.is_set():
        await asyncio.sleep(0.001)


async def _queued(batcher: EncodeBatcher, n: int):
    """Until ``n`` requests wait in the batcher's queue (each task queues at its first step)."""
    while len(batcher._queue) < n:
        await asyncio.sleep(0)


async def _first_then_crowd(batcher: EncodeBatcher, encoder: GatedEncoder, crowd: list[list[str]]):
    """One request starts the encoder; ``crowd`` queues while it runs; then the encoder goes on."""
    first = asyncio.ensure_future(batcher.encode(["a"]))
    await _wait_for(encoder.started)
    rest = [asyncio.ensure_future(batcher.encode(texts)) for texts in crowd]
    await _queued(batcher, len(crowd))
    encoder.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_requests_that_arrive_while_the_model_runs_are_encoded_together_each_getting_its_own_rows():
    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder.encode)
    crowd = [["bb"], ["ccc", "dddd"], ["e"], ["ffffff"]]
    results = asyncio.run(_first_then_crowd(batcher, encoder, crowd))

    assert encoder.calls == [["a"], ["bb", "ccc", "dddd", "e", "ffffff"]]  # two model calls for five requests
    for texts, rows in zip([["a"]] + crowd, results):
        assert rows.tolist() == [[len(t), ord(t[0])] for t in texts]  # its own rows, in its order
    assert (batcher.stats.calls, batcher.stats.requests, batcher.stats.texts) == (2, 5, 6)


def test_a_lone_request_waits_for_nobody():
    encoder = GatedEncoder()
    encoder.release.set()
    batcher = EncodeBatcher(encoder.encode)

    async def one_after_another():
        return [await batcher.encode([t]) for t in ("x", "yy", "zzz")]

    out = asyncio.run(one_after_another())
    assert encoder.calls == [["x"], ["yy"], ["zzz"]] and [o[0, 0] for o in out] == [1, 2, 3]


def test_a_batch_stops_at_its_token_and_text_bounds():
    encoder = GatedEncoder()
    # 4 characters a token and 2 for [CLS]/[SEP]: each 38-character text counts 11 tokens
    batcher = EncodeBatcher(encoder.encode, max_tokens=25, max_texts=100)
    crowd = [["x" * 38] for _ in range(5)]
    asyncio.run(_first_then_crowd(batcher, encoder, crowd))
    assert [len(c) for c in encoder.calls] == [1, 2, 2, 1]  # at most two 11-token texts a call

    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder.encode, max_texts=3)
    asyncio.run(_first_then_crowd(batcher, encoder, [["p", "q"], ["r", "s"], ["t"]]))
    assert encoder.calls[1:] == [["p", "q"], ["r", "s", "t"]]  # a request is never split


def test_a_request_larger_than_the_bounds_is_still_encoded_alone():
    encoder = GatedEncoder()
    encoder.release.set()
    batcher = EncodeBatcher(encoder.encode, max_texts=2)
    out = asyncio.run(batcher.encode(["a", "b", "c", "d"]))
    assert out.shape == (4, 2) and encoder.calls == [["a", "b", "c", "d"]]


def test_a_failed_model_call_fails_its_own_batch_only():
    encoder = GatedEncoder(fail_on="boom")
    batcher = EncodeBatcher(encoder.encode, max_texts=2)
    results = asyncio.run(_first_then_crowd(batcher, encoder, [["ok"], ["boom"], ["fine"]]))
    assert results[0].shape == (1, 2)  # the first call
    assert isinstance(results[1], RuntimeError) and isinstance(results[2], RuntimeError)  # one batch: ok + boom
    assert results[3].tolist() == [[4, ord("f")]]  # the next batch ran


def test_a_request_whose_client_left_is_skipped():
    encoder = GatedEncoder()
    batcher = EncodeBatcher(encoder.encode)

    async def run():
        first = asyncio.ensure_future(batcher.encode(["a"]))
        await _wait_for(encoder.started)
        gone = asyncio.ensure_future(batcher.encode(["gone"]))
        kept = asyncio.ensure_future(batcher.encode(["kept"]))
        await _queued(batcher, 2)
        gone.cancel()
        encoder.release.set()
        return await asyncio.gather(first, kept)

    _, kept = asyncio.run(run())
    assert encoder.calls == [["a"], ["kept"]] and kept.tolist() == [[4, ord("k")]]


def test_batch_settings_refuse_bounds_that_could_never_hold_a_text():
    with pytest.raises(ValueError, match="at least one token"):
        BatchSettings(max_tokens=0)
    with pytest.raises(ValueError, match="between 0 and 1000 ms"):
        BatchSettings(max_wait_ms=-1)


def test_one_batcher_per_encoder_dropped_with_its_encoder():
    batchers = Batchers(BatchSettings(max_tokens=100, max_texts=7, max_wait_ms=2))
    a, b = GatedEncoder(), GatedEncoder()
    assert batchers.of(a) is batchers.of(a) and batchers.of(a) is not batchers.of(b)
    assert (batchers.of(a).max_tokens, batchers.of(a).max_texts, batchers.of(a).max_wait_s) == (100, 7, 0.002)
    assert batchers.of(a).estimate_tokens("x" * 10_000) == 512  # capped at the encoder's token limit
    del a
    gc.collect()
    assert len(batchers._by_encoder) == 1  # the closed encoder's batcher went with it


class GatedIndex:
    """Searches a vector [n, _] by returning n hits ("d0".."d{n-1}") for each, as many as asked;
    the first search waits until ``release`` is set, so searches queue up behind it."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []  # (vectors, k) of each search
        self.release, self.started = threading.Event(), threading.Event()

    def search_vectors(self, vectors, k):
        self.calls.append((len(vectors), k))
        if len(self.calls) == 1:
            self.started.set()
            assert self.release.wait(10)
        return [[(f"q{int(v[0])}", f"d{i}") for i in range(k)] for v in vectors]


def test_concurrent_searches_of_one_index_go_to_it_as_one_search_each_cut_to_its_own_k():
    from embedops.app.server.batching import SearchBatcher

    index = GatedIndex()
    batcher = SearchBatcher(index.search_vectors)

    async def crowd():
        first = asyncio.ensure_future(batcher.search(np.array([[0.0, 0.0]]), 2))
        await _wait_for(index.started)
        asks = [(np.array([[1.0, 0.0], [2.0, 0.0]]), 3), (np.array([[3.0, 0.0]]), 10), (np.array([[4.0, 0.0]]), 1)]
        rest = [asyncio.ensure_future(batcher.search(v, k)) for v, k in asks]
        await _queued(batcher, len(asks))
        index.release.set()
        return await asyncio.gather(first, *rest)

    first, two, ten, one = asyncio.run(crowd())
    assert index.calls == [(1, 2), (4, 10)]  # four vectors of three requests in one search, at the largest k
    assert first == [[("q0", "d0"), ("q0", "d1")]]
    assert two == [[("q1", f"d{i}") for i in range(3)], [("q2", f"d{i}") for i in range(3)]]  # its rows, its k
    assert ten == [[("q3", f"d{i}") for i in range(10)]] and one == [[("q4", "d0")]]
    assert (batcher.stats.calls, batcher.stats.requests, batcher.stats.texts) == (2, 4, 5)


def test_a_search_batcher_lives_as_long_as_its_index():
    batchers = Batchers()
    index = GatedIndex()
    index.release.set()
    batcher = batchers.searches_of(index)
    assert batchers.searches_of(index) is batcher
    assert asyncio.run(batcher.search(np.array([[5.0, 0.0]]), 1)) == [[("q5", "d0")]]
    del index
    gc.collect()
    with pytest.raises(RuntimeError, match="was closed"):
        asyncio.run(batcher.search(np.array([[5.0, 0.0]]), 1))
