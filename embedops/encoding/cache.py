"""One process-wide cache of open ONNX encoders.

Opening an encoder means verifying the export's checksums and starting an ONNX Runtime session;
both are done once per (store, model digest, precision, providers, batch size) in a process, then
every gate, search, build and shadow run of that process shares the same session. The cache is
bounded (least recently used entries are closed first) and thread-safe.

>>> entry = ENCODERS.get(key, lambda: open_it())     # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class EncoderCache(Generic[T]):
    """A bounded, thread-safe map from a key to what ``open_`` returned the first time it was asked."""

    def __init__(self, max_size: int = 8):
        self.max_size = max_size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self.opened = 0  # how many times an entry had to be opened (a miss)

    def get(self, key: Hashable, open_: Callable[[], T]) -> T:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            value = open_()  # under the lock: two threads never open the same entry twice
            self.opened += 1
            self._entries[key] = value
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


ENCODERS: EncoderCache = EncoderCache()
"""The process's encoder cache (:func:`embedops.registry.open_export` fills it)."""
