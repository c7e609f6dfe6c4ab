"""Mirrored queries never wait: a full queue drops and counts; comparisons are recorded in batches
and kept in memory while the store refuses writes."""

import threading
import time

from embedops.app.server.metrics import ServeMetrics
from embedops.app.server.mirror import Mirror, MirrorJob
from embedops.app.server.signals import LiveSignals
from embedops.index import Hit


class _Reader:
    def __init__(self, index_id, ids, delay=0.0):
        self.index_id, self.ids, self.delay = index_id, ids, delay
        self.started = threading.Event()

    def search(self, texts, k):
        self.started.set()
        time.sleep(self.delay)
        return [[Hit(i, 1.0) for i in self.ids[:k]] for _ in texts]


class _Log:
    def __init__(self):
        self.rows, self.fail = [], False

    def append(self, rows):
        if self.fail:
            raise PermissionError("read-only store (test)")
        self.rows.extend(rows)

    def compact(self):
        pass


def _job(primary, other, texts=("q",)):
    hits = primary.search(list(texts), 3)
    return MirrorJob("shadow", "production", list(texts), 3, primary, hits, 4.0, other)


def test_a_full_queue_drops_and_counts_without_blocking():
    slow = _Reader("other", ["a", "b", "c"], delay=0.5)
    mirror = Mirror(_Log(), LiveSignals(), ServeMetrics(), server="t", queue_size=2)
    mirror.start()
    primary = _Reader("prod", ["a", "b", "x"])
    first = mirror.submit(_job(primary, slow))
    slow.started.wait(5)  # the worker is busy with the first job now
    start = time.perf_counter()
    accepted = [mirror.submit(_job(primary, slow)) for _ in range(10)]
    took = time.perf_counter() - start
    mirror.stop(timeout=0.1)
    assert first and accepted[:2] == [True, True] and not any(accepted[2:])
    assert mirror.dropped == 8 and took < 0.1  # 10 submits while the worker sleeps 0.5 s: none waited


def test_comparisons_are_batched_and_kept_while_the_store_refuses_writes():
    log, signals = _Log(), LiveSignals()
    mirror = Mirror(log, signals, ServeMetrics(), server="host:1")
    rows = mirror.run(_job(_Reader("prod", ["a", "b", "x"]), _Reader("other", ["b", "a", "c"]), texts=("q1", "q2")))
    assert [r.overlap for r in rows] == [2 / 3, 2 / 3] and rows[0].primary_ms == 2.0  # 4 ms over 2 queries
    assert rows[0].primary_ids == ("a", "b", "x") and rows[0].other_ids == ("b", "a", "c") and rows[0].server == "host:1"
    assert signals.comparisons("shadow", "production", "prod", "other", since=0) == [(2 / 3, 2.0, rows[0].other_ms)] * 2
    log.fail = True
    mirror.flush()
    assert log.rows == [] and "read-only store" in mirror.write_error
    log.fail = False
    mirror.flush()
    assert len(log.rows) == 2 and mirror.write_error is None


def test_shadow_work_waits_for_a_quiet_moment_but_canary_work_does_not():
    from embedops.app.server.mirror import InFlight

    requests = InFlight()
    log = _Log()
    mirror = Mirror(log, LiveSignals(), ServeMetrics(), server="t", requests=requests, flush_interval=0.05,
                    max_defer=30)
    primary, other = _Reader("prod", ["a", "b", "c"]), _Reader("other", ["a", "b", "c"])
    mirror.start()
    with requests:  # a request is being answered throughout
        assert mirror.submit(_job(primary, other))  # shadow
        canary = _job(primary, other)
        mirror.submit(MirrorJob("canary", "production", canary.texts, 3, primary, canary.primary_hits, 4.0, other))
        deadline = time.monotonic() + 5
        while not any(r.kind == "canary" for r in log.rows) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.kind for r in log.rows] == ["canary"]  # the shadow job still waits
    deadline = time.monotonic() + 5
    while len(log.rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    mirror.stop()
    assert [r.kind for r in log.rows] == ["canary", "shadow"]
