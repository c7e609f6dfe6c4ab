"""Following aliases: which opened indexes each alias is served from now, switched only once open.

The server's background loop calls :meth:`AliasFollower.refresh` at most once per
``check_interval``: one small read of each followed alias's head. When the head moved (a promotion,
a rollback, a canary started, ramped or ended), the indexes the new record names are opened (table
at its ready version, model's encoder) *before* the switch; the switch itself replaces one immutable
:class:`AliasView`. Requests take the view once, at their start, so in-flight requests finish on the
indexes they started on and a response never mixes two. Readers of recent targets stay open for an
instant switch back. A store that cannot be read leaves the views as they are.

A bridge (issue #35) whose new model's index is being built is looked at again every
``progress_interval``: once the rebuild reaches the share its guard report measured the
progressive merge to hold up from, and at each commit of the build after that, its reader is
reopened as a :class:`~embedops.index.ProgressiveReader` over what the build holds then
(:mod:`embedops.registry.progressive`), and the view switched as for a promotion.

>>> follower = AliasFollower(Searcher(registry))          # doctest: +SKIP
>>> view = follower.view("production")                      # doctest: +SKIP
>>> reader, route = view.route("client-42")                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from embedops.errors import NotFoundError
from embedops.index import IndexReader
from embedops.registry import AliasState, Searcher
from embedops.registry.progressive import progressive_plan
from embedops.store import utcnow


def canary_bucket(alias: str, key: str) -> float:
    """Where ``key`` (a client id, else the query text) falls in [0, 100) for ``alias``: a request goes
    to the canary when this is below the canary's percent, so a client keeps its side while the
    canary runs, and stays on it when the share grows."""
    digest = hashlib.blake2b(f"{alias}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


@dataclass(frozen=True)
class AliasView:
    """What one alias is served from since ``since`` (monotonic seconds): its record, the stable
    index, the canary (if any), and the index the last promotion replaced (kept open, for the watch
    after a promotion)."""

    alias: str
    state: AliasState
    stable: IndexReader
    canary: IndexReader | None
    previous: IndexReader | None
    since: float
    opened_in: float = 0.0  # seconds it took to open what this view needed that was not open yet
    switched_at: str = ""  # when this server started answering from it (UTC, as alias records stamp time)

    def route(self, key: str) -> tuple[IndexReader, str]:
        """The reader answering a request with client key ``key``, and ``"stable"`` or ``"canary"``."""
        if self.canary is not None and self.state.canary is not None \
                and canary_bucket(self.alias, key) < self.state.canary.percent:
            return self.canary, "canary"
        return self.stable, "stable"


class AliasFollower:
    """Opens the indexes aliases point at and switches a view only once they are open. Thread-safe."""

    def __init__(self, searcher: Searcher, *, check_interval: float = 1.0, keep_open: int = 6,
                 on_switch: Callable[[AliasView | None, AliasView], None] | None = None, progress_interval: float = 5.0):
        self.searcher = searcher
        self.check_interval = check_interval
        self.progress_interval = progress_interval
        self.keep_open = keep_open
        self.on_switch = on_switch
        self.store_error: str | None = None  # the last failed read of an alias head, while it lasts
        self.open_errors: dict[str, str] = {}  # alias -> why its new target could not be opened yet
        self._views: dict[str, AliasView] = {}
        self._open: OrderedDict[str, IndexReader] = OrderedDict()  # index id -> reader, most recent last
        self._lock = threading.Lock()  # one opener at a time
        self._last_refresh = 0.0
        self._last_progress = time.monotonic()
        self._plans: dict[str, tuple | None] = {}  # bridge id -> the progressive plan its open reader follows

    def views(self) -> dict[str, AliasView]:
        return dict(self._views)

    def opened(self, alias: str) -> AliasView | None:
        """The view of a followed alias (None if it is not open yet), without copying :meth:`views`
        or touching the store: what a request reads on the event loop."""
        return self._views.get(alias)

    def view(self, alias: str) -> AliasView:
        """The view to answer one request with. Never reads the store once ``alias`` is followed;
        the first request for an alias opens it (NotFoundError when it points at nothing)."""
        view = self._views.get(alias)
        if view is not None:
            return view
        with self._lock:
            view = self._views.get(alias)
            if view is None:
                state = self.searcher.registry.aliases.get(alias)
                if state is None or state.value is None:
                    raise NotFoundError(f"alias {alias!r} does not point at any index yet; promote an index first")
                view = self._open_view(alias, state)
            return view

    def refresh(self, *, force: bool = False) -> None:
        """Read each followed alias's head (at most once per ``check_interval`` unless ``force``) and
        switch the views whose record moved."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.check_interval:
            return
        self._last_refresh = now
        with self._lock:
            for alias, view in list(self._views.items()):
                try:
                    state = self.searcher.registry.aliases.get(alias)
                    self.store_error = None
                except Exception as exc:  # the store is unreachable: keep serving what is open
                    self.store_error = f"{type(exc).__name__}: {exc}"
                    return
                if state is None or state.value is None or state.seq == view.state.seq:
                    continue
                try:
                    self._open_view(alias, state)
                    self.open_errors.pop(alias, None)
                except Exception as exc:  # keep the old view; retried at the next check
                    self.open_errors[alias] = f"cannot open what {alias} points at now: {type(exc).__name__}: {exc}"
            if force or now - self._last_progress >= self.progress_interval:
                self._last_progress = now
                self._follow_rebuilds()

    def _follow_rebuilds(self) -> None:
        """Reopen the bridges whose progressive plan moved, and switch their views (under the lock)."""
        for alias, view in list(self._views.items()):
            sides = {"stable": (view.stable, view.state.report_id)}
            if view.canary is not None and view.state.canary is not None:
                sides["canary"] = (view.canary, view.state.canary.report_id)
            changes = {}
            for side, (reader, report_id) in sides.items():
                if reader.record.bridge is None:
                    continue
                try:
                    plan = progressive_plan(self.searcher.registry, reader.record, report_id)
                    if (plan.key if plan else None) != self._plans.get(reader.index_id):
                        changes[side] = self._reader(reader.index_id, report_id, reopen=True)
                except Exception as exc:  # keep answering from what is open; retried at the next look
                    self.open_errors[alias] = f"cannot follow the rebuild behind {reader.index_id}: " \
                                              f"{type(exc).__name__}: {exc}"
            if changes:
                now = time.monotonic()
                new = dataclasses.replace(view, **changes, since=now, opened_in=0.0, switched_at=utcnow())
                self._views[alias] = new
                if self.on_switch:
                    self.on_switch(view, new)

    def _reader(self, index_id: str, report_id: str | None = None, *, reopen: bool = False) -> IndexReader:
        """The open reader of ``index_id`` (opened now if it is not); a bridge answers progressively
        when its rebuild has reached the share report ``report_id`` measured."""
        reader = None if reopen else self._open.get(index_id)
        if reader is None:
            rec = self.searcher.record(index_id)
            plan = progressive_plan(self.searcher.registry, rec, report_id) if rec.bridge else None
            reader = (self.searcher.open_progressive(rec, plan) if plan and plan.active
                      else self.searcher.open(rec, warm=True))  # an int8 index's codes load before it serves
            if rec.bridge:
                self._plans[index_id] = plan.key if plan else None
        self._open[index_id] = reader
        self._open.move_to_end(index_id)
        return reader

    def _open_view(self, alias: str, state: AliasState) -> AliasView:
        """Open what ``state`` names, then make it ``alias``'s view (called under the lock)."""
        start = time.monotonic()
        stable = self._reader(state.value, state.report_id)
        canary = self._reader(state.canary.index_id, state.canary.report_id) if state.canary else None
        previous = None
        if state.action == "promote" and state.previous:
            try:
                previous = self._reader(state.previous)
            except Exception:  # retired or dropped since: nothing to compare the new target with
                previous = None
        old = self._views.get(alias)
        now = time.monotonic()
        view = AliasView(alias, state, stable, canary, previous, now, now - start, utcnow())
        self._views[alias] = view
        in_use = {r.index_id for v in self._views.values() for r in (v.stable, v.canary, v.previous) if r}
        while len(self._open) > max(self.keep_open, len(in_use)):
            oldest = next((i for i in self._open if i not in in_use), None)
            if oldest is None:
                break
            del self._open[oldest]  # requests still holding it finish; it closes when they drop it
        if self.on_switch:
            self.on_switch(old, view)
        return view

    def targets(self) -> dict[str, tuple[str, str | None, float]]:
        """``{alias: (stable index, canary index or None, canary percent)}``."""
        return {a: (v.stable.index_id, v.canary.index_id if v.canary else None,
                    v.state.canary.percent if v.state.canary else 0.0) for a, v in self._views.items()}
