"""Cross-process locks that serialise work on one store (e.g. index builds of the same inputs).

* :class:`FileLock`, for a local store: ``flock`` on a file under ``<store>/locks/``; the kernel
  releases it when the holder exits, even on SIGKILL.
* :class:`ObjectLease`, for an ``s3://`` store: a lease held as numbered objects under
  ``locks/NAME/``. Taking it is an exclusive create of the next number (``If-None-Match: *``), so
  of several machines exactly one wins; the holder renews its object's expiry every few seconds
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

from embedops.errors import LockHeldError
from embedops.records import actor

_WIDTH = 12


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
    """A lease on object storage (see the module docstring); ``objects`` is an
    :class:`embedops.objects.S3Objects`, ``prefix`` the folder of the lease's numbered records."""

    def __init__(self, objects, prefix: str, *, what: str, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None, ttl: float = 60.0, poll: float = 1.0):
        self.objects = objects
        self.prefix = prefix.rstrip("/")
        self.what = what
        self.wait = wait
        self.on_wait = on_wait or (lambda holder: None)
        self.ttl = ttl
        self.poll = poll
        self.waited = False
        self._key: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _head(self) -> tuple[int, dict[str, Any] | None]:
        files, _ = self.objects.listdir(self.prefix)
        seqs = sorted(int(f[:-5]) for f in files if f.endswith(".json") and f[:-5].isdigit())
        if not seqs:
            return 0, None
        data = self.objects.read(f"{self.prefix}/{seqs[-1]:0{_WIDTH}d}.json")
        return seqs[-1], json.loads(data) if data else None

    def __enter__(self) -> "ObjectLease":
        told = False
        while True:
            seq, head = self._head()
            free = head is None or head.get("state") == "released" or head.get("expires", 0) < time.time()
            if free:
                key = f"{self.prefix}/{seq + 1:0{_WIDTH}d}.json"
                payload = {"state": "held"} | _holder(self.ttl)
                if self.objects.create(key, json.dumps(payload).encode()):
                    self._key, self._payload = key, payload
                    self._renewer = threading.Thread(target=self._renew, name="embedops-lease", daemon=True)
                    self._renewer.start()
                    return self
                continue  # someone else took that number first: look again
            if not self.wait:
                raise LockHeldError(
                    f"{self.what} is already running: {describe_holder(head)} holds the lease "
                    f"{self.prefix} (it expires {self.ttl:.0f} s after its holder stops renewing it). "
                    "Wait for it, or rerun with --wait to queue behind it.")
            if not told:
                self.waited, told = True, True
                self.on_wait(describe_holder(head))
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
