"""Cross-process locks that serialise work on one store (e.g. index builds of the same inputs).

* :class:`FileLock`, for a local store: ``flock`` on a file under ``<store>/locks/``; the kernel
  releases it when the holder exits, even on SIGKILL.
* :class:`ObjectLease`, for an ``s3://`` store: a lease held as a compare-and-swap log under
  ``locks/NAME/`` (:class:`embedops.objects.ObjectRefLog`, the same log aliases use). Taking it is
  an exclusive create of the next record (``If-None-Match: *``), so of several machines exactly one
  wins; the holder renews its object's expiry every few seconds
  from a background thread, and a lease whose holder stopped renewing (a killed process) expires
  after ``ttl`` seconds and may be taken over, again by exclusive create.

Both say who holds the lock (actor, host, pid, since when) to a process that cannot take it, which
either gets :class:`~embedops.errors.LockHeldError` or, with ``wait=True``, waits its turn.

>>> with FileLock(Path("store/locks/job.lock"), what="the nightly job"):   # doctest: +SKIP
...     run_the_job()
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedops.errors import ConflictError, LockHeldError
from embedops.records import actor


def _holder(ttl: float | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"actor": actor(), "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    if ttl is not None:
        info["expires"] = time.time() + ttl
    return info


def describe_holder(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("since", 0)))
    return f"{info.get('actor', '?')} (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since})"


class FileLock:
    """An exclusive ``flock`` on ``path``; ``waited`` tells whether it had to wait for another holder."""

    def __init__(self, path: Path, *, what: str, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.what = what
        self.wait = wait
        self.on_wait = on_wait or (lambda holder: None)
        self.waited = False
        self._fh = None

    def __enter__(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(self._read_holder())
            if not self.wait:
                fh.close()
                raise LockHeldError(f"{self.what} is already running: {holder} holds {self.path}. "
                                    "Wait for it, or rerun with --wait to queue behind it.") from None
            self.waited = True
            self.on_wait(holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_holder()))
        fh.flush()
        self._fh = fh
        return self

    def _read_holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text("utf-8") or "null")
        except (OSError, json.JSONDecodeError):
            return None

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class ObjectLease:
    """A lease on object storage (see the module docstring): the log ``locks/NAME`` of ``objects``,
    an :class:`embedops.objects.S3Objects`."""

    def __init__(self, objects, name: str, *, what: str, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None, ttl: float = 60.0, poll: float = 1.0):
        from embedops.objects import ObjectRefLog

        self.objects = objects
        self.log = ObjectRefLog(objects, root="locks")
        self.name = name
        self.what = what
        self.wait = wait
        self.on_wait = on_wait or (lambda holder: None)
        self.ttl = ttl
        self.poll = poll
        self.waited = False
        self._key: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> "ObjectLease":
        told = False
        while True:
            head = self.log.head(self.name)
            held = head.payload if head else None
            if held is None or held.get("state") == "released" or held.get("expires", 0) < time.time():
                payload = {"state": "held"} | _holder(self.ttl)
                try:
                    rec = self.log.append(self.name, head.seq if head else 0, payload)
                except ConflictError:
                    continue  # someone else took that record first: look again
                self._key, self._payload = self.log.record_key(self.name, rec.seq), payload
                self._renewer = threading.Thread(target=self._renew, name="embedops-lease", daemon=True)
                self._renewer.start()
                return self
            if not self.wait:
                raise LockHeldError(
                    f"{self.what} is already running: {describe_holder(held)} holds the lease "
                    f"locks/{self.name} (it expires {self.ttl:.0f} s after its holder stops renewing it). "
                    "Wait for it, or rerun with --wait to queue behind it.")
            if not told:
                self.waited, told = True, True
                self.on_wait(describe_holder(held))
            time.sleep(self.poll)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            self._payload["expires"] = time.time() + self.ttl
            try:
                self.objects.write(self._key, json.dumps(self._payload).encode())
            except Exception:  # a missed renewal only shortens the lease; the next one retries
                pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self._key is not None:
            self.objects.write(self._key, json.dumps(self._payload | {"state": "released"}).encode())
            self._key = None
