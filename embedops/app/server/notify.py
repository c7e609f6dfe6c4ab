"""A notification when an alias log of a local store gets a record, so a server switches at once
instead of at its next check.

:class:`AliasChanges` watches ``refs/aliases/`` with watchfiles (inotify on Linux, the native
watcher elsewhere; a small debounce) on a thread of its own and sets an event the server's loop
waits on. It only wakes the loop: the loop still reads the alias heads itself, and its periodic
check (``--check-interval``) stays as the fallback, and as the only way on an ``s3://`` store or
where no file watcher runs.

>>> changes = AliasChanges(store.root / "refs" / "aliases", wake)     # doctest: +SKIP
>>> changes.start()                                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger("embedops.serve")


def _record_written(change, path: str) -> bool:
    name = Path(path).name
    return name.endswith(".json") and not name.startswith(".")  # a published record, not a temporary file


class AliasChanges:
    """Sets ``wake`` whenever a record is published under ``folder`` (an alias log folder's parent)."""

    def __init__(self, folder: Path, wake: threading.Event, *, debounce_ms: int = 20):
        self.folder = Path(folder)
        self.wake = wake
        self.debounce_ms = debounce_ms
        self.watching = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start watching (:attr:`watching` turns True once the watcher is set up); False, and polling
        only, when the folder does not exist or watchfiles is missing."""
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            return False
        if not self.folder.is_dir():
            return False
        self._thread = threading.Thread(target=self._run, name="embedops-alias-changes", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        import watchfiles

        try:
            # yield_on_timeout: the first (empty) yield says the watcher is set up; from then on no
            # record is missed, and the wake after it re-reads whatever was published before
            for changes in watchfiles.watch(self.folder, watch_filter=_record_written, debounce=self.debounce_ms,
                                            step=10, stop_event=self._stop, raise_interrupt=False, rust_timeout=200,
                                            yield_on_timeout=True):
                if changes or not self.watching:
                    self.watching = True
                    self.wake.set()
        except Exception:  # the watcher failed: the periodic check still follows the aliases
            log.warning("embedops serve: watching %s failed; following aliases by polling only", self.folder,
                        exc_info=True)
        self.watching = False
