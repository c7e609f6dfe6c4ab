"""Keeping Python's full garbage collections off the request path of a loaded server.

A serve process holds about 600,000 objects that live as long as it does (the modules of FastAPI,
pydantic, LanceDB, the tokenizer and the runtimes). Under load, requests in flight survive the young
collections and reach the oldest generation, which triggers full collections about once a second;
each scans every one of those objects and held the GIL for 100-250 ms on the 2-core machine of
docs/BENCHMARKS.md: every request in flight waited, and the p99 latency at 32 clients was 280-300 ms
against a p95 of 80. :class:`HeapSettler` moves what is alive once the served indexes are open into
the permanent generation (:func:`gc.freeze`, after a full collection, as CPython's documentation
recommends for long-lived servers), so later full collections scan only newer objects (about 1 ms).
It settles again whenever the served indexes change (a promotion, a canary, a rollback), first
unfreezing, so garbage of the indexes no longer served is still collected.

>>> settler = HeapSettler()
>>> settler.settle(("production", "idx-a")), settler.settle(("production", "idx-a"))
(True, False)
"""

from __future__ import annotations

import gc
from collections.abc import Hashable


class HeapSettler:
    """Freezes the live heap once per set of served targets (see the module docstring)."""

    def __init__(self):
        self._settled_for: Hashable | None = None

    def settle(self, targets: Hashable) -> bool:
        """Collect and freeze the heap if ``targets`` differ from the last settled ones; True if it did."""
        if targets == self._settled_for:
            return False
        gc.unfreeze()  # what was frozen for the previous targets may be garbage now
        gc.collect()
        gc.freeze()
        self._settled_for = targets
        return True

    def release(self) -> None:
        """Unfreeze what this settler froze (the server stops; the process may go on)."""
        if self._settled_for is not None:
            gc.unfreeze()
            self._settled_for = None
