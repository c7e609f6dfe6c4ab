"""What one app's endpoints and loops share (:class:`ServerState`), made once by :func:`create_app`
and handed to each router: no module-level state, so two apps in one process never mix."""

from __future__ import annotations

import datetime
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

from embedops.app.server.background import Background, utc_now_default
from embedops.app.server.batching import Batchers
from embedops.app.server.follower import AliasFollower, AliasView
from embedops.app.server.metrics import ServeMetrics
from embedops.app.server.mirror import InFlight, Mirror
from embedops.app.server.settings import ServeSettings
from embedops.app.server.signals import LiveSignals
from embedops.errors import EmbedopsError, NotFoundError
from embedops.registry import Registry, Searcher


@dataclass
class ServerState:
    """The registry and settings a server runs with, and the parts its endpoints share: the alias
    follower, live signals, the mirror and the requests in flight it waits for, the background loop,
    the encoding batchers and the metrics."""

    registry: Registry
    settings: ServeSettings
    searcher: Searcher
    metrics: ServeMetrics
    follower: AliasFollower
    signals: LiveSignals
    in_flight: InFlight
    mirror: Mirror
    background: Background
    batchers: Batchers
    utc_now: Callable[[], datetime.datetime]
    chance: random.Random

    @classmethod
    def open(cls, registry: Registry, settings: ServeSettings, utc_now=None) -> ServerState:
        """Every part, wired; nothing runs until :meth:`start`."""
        utc_now = utc_now or utc_now_default
        server = f"{socket.gethostname()}:{os.getpid()}"
        searcher = Searcher(registry, runtime=settings.runtime, read_only=True)  # a server writes no export
        metrics = ServeMetrics()
        follower = AliasFollower(searcher, check_interval=settings.check_interval,
                                 on_switch=lambda old, new: metrics.open_seconds.labels(new.alias).observe(new.opened_in))
        signals = LiveSignals()
        in_flight = InFlight()
        mirror = Mirror(registry.live, signals, metrics, server=server, queue_size=settings.mirror_queue,
                        flush_interval=settings.flush_interval, requests=in_flight)
        background = Background(registry, settings, follower, mirror, signals, metrics, server, utc_now)
        return cls(registry, settings, searcher, metrics, follower, signals, in_flight, mirror, background,
                   Batchers(settings.batching, on_batch=metrics.observe_batch), utc_now, random.Random())

    def start(self) -> None:
        self.mirror.start()
        self.background.start()

    def stop(self) -> None:
        self.background.stop()
        self.mirror.stop()

    def view_of(self, alias_name: str) -> AliasView:
        """The alias's view, opening it when not followed yet; HTTP errors a client can act on."""
        try:
            return self.follower.view(alias_name)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except EmbedopsError as exc:
            raise HTTPException(409, str(exc)) from None
        except Exception as exc:
            raise HTTPException(503, f"the store cannot be read and no index of {alias_name!r} is open yet: "
                                     f"{type(exc).__name__}: {exc}") from None

    async def open_view(self, alias_name: str) -> AliasView:
        """:meth:`view_of` without blocking the event loop: at once when the alias is followed, else
        opened on a worker thread."""
        view = self.follower.opened(alias_name)
        return view if view is not None else await run_in_threadpool(self.view_of, alias_name)
