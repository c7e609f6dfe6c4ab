"""The server's background loop (:class:`Background`): follow aliases, update gauges, judge canaries
and watched promotions by the rollback policy, probe that the store takes writes."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass

from embedops.app.server.follower import AliasFollower, AliasView
from embedops.app.server.heap import HeapSettler
from embedops.app.server.metrics import ServeMetrics
from embedops.app.server.mirror import Mirror
from embedops.app.server.notify import AliasChanges
from embedops.app.server.rollback import Verdict, judge
from embedops.app.server.settings import ServeSettings
from embedops.app.server.signals import LiveSignals
from embedops.errors import AliasConflictError, UsageError
from embedops.registry import Registry

log = logging.getLogger("embedops.serve")


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


class Background:
    """The server's loop: follow aliases, update gauges, judge canaries and watched promotions, probe
    that the store takes writes. One thread; nothing on the request path waits for it."""

    def __init__(self, registry: Registry, settings: ServeSettings, follower: AliasFollower, mirror: Mirror,
                 signals: LiveSignals, metrics: ServeMetrics, server: str, utc_now=None):
        self.registry, self.settings, self.follower = registry, settings, follower
        self.utc_now = utc_now or utc_now_default
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
        self._heap = HeapSettler()

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
        self._heap.release()

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
        targets = self.follower.targets()
        self.metrics.show_targets(targets)
        if self.settings.settle_heap and targets:
            self._heap.settle(tuple(sorted(targets.items())))
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
            elif view.previous is not None and age(view.state.ts, self.utc_now()) <= policy.watch:
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


def utc_now_default() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def age(ts: str, now: datetime.datetime) -> float:
    """Seconds from the alias record stamped ``ts`` (its wall-clock UTC timestamp) to ``now``: a
    promotion is watched for ``watch`` seconds after it happened, not after this server started."""
    return (now - datetime.datetime.fromisoformat(ts)).total_seconds()
