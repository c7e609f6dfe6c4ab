"""How one ``embedops serve`` process runs (:class:`ServeSettings`): what it serves, how it follows
aliases, mirrors and judges live traffic, bounds and batches requests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from embedops.app.dashboard.auth import SESSION_TTL
from embedops.app.dashboard.routes import LOOPBACK_HOSTS
from embedops.app.server.batching import BatchSettings
from embedops.app.server.limits import RequestLimits
from embedops.app.server.rollback import RollbackPolicy
from embedops.encoding.encoder import RUNTIMES
from embedops.errors import UsageError


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
    # Freeze the live heap once the served indexes are open, and again when they change, so full
    # garbage collections stop pausing requests (embedops.app.server.heap; p99 at 32 clients 280 -> 100
    # ms). `embedops serve` turns it on; an app made in another process leaves that process's heap alone.
    settle_heap: bool = False
    # Worker threads (anyio's default is 40) for batched model calls, index searches and the dashboard's
    # sync pages. Requests waiting for their batch hold none. The encoder already uses every core for
    # one call, so more threads add no throughput; they only take the GIL from the event loop, which
    # then answers /readyz and new connections late under load. 0: anyio's default.
    threads: int = field(default_factory=lambda: max(4, 2 * (os.cpu_count() or 1)))
    # Which runtime embeds queries (see choose_runtime): auto takes OpenVINO on the CPU for fp32 and
    # bf16 exports, the only runtime that computes bf16 (2.5x ONNX Runtime's fp32 on a 32-query
    # batch on an AMX CPU, docs/BENCHMARKS.md). OpenVINO froze loaded serve processes when called from
    # several threads; every call into it now runs on one thread (encoding.openvino_runtime).
    runtime: str = "auto"
    # The guard policy file a dashboard promotion is judged under (default ./embedops.toml), as
    # `embedops promote --policy` would; its [serve.rollback] section is `rollback` above.
    policy_file: str | None = None
    # What one request may carry (413 past it; see embedops.app.server.limits).
    limits: RequestLimits = field(default_factory=RequestLimits)
    # Host names the dashboard answers (400 for others: no DNS rebinding); the CLI adds its bind address.
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    session_ttl: float = SESSION_TTL  # seconds a dashboard sign-in lasts
    # How concurrent requests' query texts are encoded together (embedops.app.server.batching).
    batching: BatchSettings = field(default_factory=BatchSettings)

    def __post_init__(self):
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        if isinstance(self.limits, dict):  # from $EMBEDOPS_SERVE_SETTINGS
            object.__setattr__(self, "limits", RequestLimits(**self.limits))
        if isinstance(self.batching, dict):
            try:
                object.__setattr__(self, "batching", BatchSettings(**self.batching))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if self.runtime not in RUNTIMES:
            raise UsageError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if not 0 <= self.shadow_fraction <= 1:
            raise UsageError(f"--shadow-fraction must be between 0 and 1 (got {self.shadow_fraction})")
        if self.check_interval <= 0:
            raise UsageError(f"the alias check interval must be positive (got {self.check_interval})")
