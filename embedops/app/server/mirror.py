"""Mirrored queries: a live query answered by one index, run again on another off the request path.

:meth:`Mirror.submit` only puts a job on a bounded queue and never waits: when the queue is full the
job is dropped and counted. Shadow jobs also yield the CPU to requests: the worker starts one only
once no request has been in flight for ``quiet`` seconds (or, under unbroken load, once it has
waited ``max_defer`` seconds), so live shadow work runs in the server's idle moments instead of
beside a user's request, and under overload its queue fills and drops. Jobs that feed the rollback
policy (a canary's queries, production's after a promotion) have their own queue and run first,
without waiting: their cost is bounded by the canary's share and ``compare_fraction``, and a canary
under heavy load must still be judged. The worker runs the other index's search,
compares the two top-k lists (overlap@k,
Kendall's tau from :func:`embedops.guards.shadow.rank_correlation`, both latencies), feeds the live
signals the rollback policy reads, and appends the comparisons to the store in batches
(:class:`embedops.registry.LiveComparisonLog`). When the store cannot be written, comparisons wait
in memory (bounded; the oldest are dropped and counted) and :attr:`Mirror.write_error` says why.

>>> mirror = Mirror(registry.live, LiveSignals(), ServeMetrics(), server="host:123")   # doctest: +SKIP
>>> mirror.start(); mirror.submit(MirrorJob(...)); mirror.stop()                      # doctest: +SKIP
"""

from __future__ import annotations

import collections

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

from embedops.app.server.metrics import ServeMetrics
from embedops.app.server.signals import LiveSignals
from embedops.guards.shadow import rank_correlation
from embedops.index import Hit, IndexReader
from embedops.registry import LiveComparison, LiveComparisonLog
from embedops.store import utcnow


class InFlight:
    """How many requests are being answered now, and since when none is; the mirror waits on it
    without polling (a condition notified when the last request in flight ends)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self._idle_since = time.monotonic()

    def __enter__(self) -> InFlight:
        with self._cond:
            self._count += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._count -= 1
            if self._count == 0:
                self._idle_since = time.monotonic()
                self._cond.notify_all()

    def wait_quiet(self, seconds: float, timeout: float) -> bool:
        """Block until no request has been in flight for ``seconds`` (True), or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._count == 0 and now - self._idle_since >= seconds:
                    return True
                if now >= deadline:
                    return False
                wake = self._idle_since + seconds if self._count == 0 else deadline
                self._cond.wait(max(0.0, min(wake, deadline) - now))


@dataclass(frozen=True)
class MirrorJob:
    """Queries ``texts`` that ``primary`` answered with ``primary_hits`` in ``primary_ms`` (all of
    them), to run again on ``other``."""

    kind: str
    alias: str
    texts: list[str]
    k: int
    primary: IndexReader
    primary_hits: list[list[Hit]]
    primary_ms: float
    other: IndexReader


class Mirror:
    """A bounded queue of mirrored queries and the thread that runs and records them."""

    def __init__(self, log: LiveComparisonLog, signals: LiveSignals, metrics: ServeMetrics, *, server: str,
                 queue_size: int = 256, flush_interval: float = 2.0, max_unwritten: int = 10_000,
                 compact_every: int = 200, requests: InFlight | None = None, quiet: float = 0.005,
                 max_defer: float = 1.0):
        self.log = log
        self.signals = signals
        self.metrics = metrics
        self.server = server
        self.flush_interval = flush_interval
        self.compact_every = compact_every
        self.requests = requests or InFlight()
        self.quiet = quiet
        self.max_defer = max_defer
        self.write_error: str | None = None
        self.last_write_ok: float | None = None
        self.dropped = 0
        self.submitted: collections.Counter[str] = collections.Counter()  # jobs offered, by kind (on the request path)
        self._shadow: queue.Queue[MirrorJob] = queue.Queue(maxsize=queue_size)
        self._watch: queue.Queue[MirrorJob] = queue.Queue(maxsize=queue_size)  # canary / previous: run first
        self._pending: deque[LiveComparison] = deque(maxlen=max_unwritten)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flushes = 0
        self._last_flush = time.monotonic()

    def submit(self, job: MirrorJob) -> bool:
        """Queue ``job``; False (and counted as dropped) when the queue is full. Never blocks."""
        self.submitted[job.kind] += 1
        try:
            (self._shadow if job.kind == "shadow" else self._watch).put_nowait(job)
            return True
        except queue.Full:
            self.dropped += 1
            self.metrics.mirrored.labels(job.kind, "dropped").inc()
            return False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="embedops-mirror", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued jobs (up to ``timeout``), write what is pending, stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not (self._stop.is_set() and self._watch.empty() and self._shadow.empty()):
            if not self._run_watched():
                try:
                    job = self._shadow.get(timeout=0.05)
                except queue.Empty:
                    job = None
                if job is not None:
                    self._wait_for_a_quiet_moment()
                    self.run(job)
            self._flush_when_due()

    def _flush_when_due(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
            self._last_flush = time.monotonic()

    def _run_watched(self) -> bool:
        """Run one queued canary / previous job, if any."""
        try:
            job = self._watch.get_nowait()
        except queue.Empty:
            return False
        self.run(job)
        return True

    def _wait_for_a_quiet_moment(self) -> None:
        """Wait (without polling) until no request has been in flight for ``quiet`` seconds, at most
        ``max_defer``; canary / previous jobs queued meanwhile run first, checked every 50 ms."""
        deadline = time.monotonic() + self.max_defer
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.requests.wait_quiet(self.quiet, timeout=min(0.05, left)):
                return
            while self._run_watched():
                pass
            self._flush_when_due()

    def run(self, job: MirrorJob) -> list[LiveComparison]:
        """Run ``job`` on its other index and record the comparisons (what the worker thread does)."""
        start = time.perf_counter()
        try:
            other_hits = job.other.search(job.texts, job.k)
        except Exception:
            self.metrics.mirrored.labels(job.kind, "failed").inc()
            return []
        other_ms = 1000 * (time.perf_counter() - start) / max(1, len(job.texts))
        primary_ms = job.primary_ms / max(1, len(job.texts))
        ts = utcnow()
        rows = []
        for text, mine, theirs in zip(job.texts, job.primary_hits, other_hits):
            a, b = [h.id for h in mine], [h.id for h in theirs]
            overlap = len(set(a) & set(b)) / job.k
            rows.append(LiveComparison(
                ts=ts, server=self.server, kind=job.kind, alias=job.alias, primary_index=job.primary.index_id,
                other_index=job.other.index_id, query=text, k=job.k, overlap=overlap,
                rank_correlation=rank_correlation(a, b), primary_ms=primary_ms, other_ms=other_ms,
                primary_ids=tuple(a), other_ids=tuple(b)))
            self.signals.comparison(job.kind, job.alias, job.primary.index_id, job.other.index_id, overlap,
                                    primary_ms, other_ms)
        before = len(self._pending)
        self._pending.extend(rows)
        lost = before + len(rows) - len(self._pending)
        if lost:
            self.metrics.unrecorded.inc(lost)
        self.metrics.mirrored.labels(job.kind, "done").inc()
        return rows

    def flush(self) -> None:
        """Append the pending comparisons to the store in one commit; on failure keep them."""
        if not self._pending:
            return
        rows = list(self._pending)
        try:
            self.log.append(rows)
        except Exception as exc:
            self.write_error = f"cannot record live comparisons in the store: {type(exc).__name__}: {exc}"
            self.metrics.writable.set(0)
            return
        for _ in rows:
            self._pending.popleft()
        self.write_error = None
        self.last_write_ok = time.monotonic()
        self.metrics.writable.set(1)
        self._flushes += 1
        if self._flushes % self.compact_every == 0:
            try:
                self.log.compact()
            except Exception:  # another server compacting at the same time: the next one will
                pass
