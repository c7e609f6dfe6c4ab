"""Compare-and-swap records: an append-only log per key whose slots are created exclusively.

This is the one primitive every atomic pointer in embedops rests on (aliases, version numbers).
A key's log is a folder of numbered JSON records. Appending record ``n + 1`` succeeds only if that
slot does not exist yet, so of several writers that all read head ``n``, exactly one wins and the
others get :class:`~embedops.errors.ConflictError`. The current value is the highest record.

It is the same protocol Lance uses to commit table manifests:

* on a local disk, the record is written to a private temporary file, flushed, then published
  with ``os.link`` — which fails if the target exists, so the slot is taken whole or not at all
  (a writer killed with SIGKILL leaves at most an ignored temporary file);
* on object storage the same publish step is a conditional PUT (``If-None-Match: *``), which S3,
  GCS and Azure support; several machines sharing one store then keep the same guarantee
  (:class:`embedops.objects.ObjectRefLog`, used by ``s3://`` stores).

Reading the head is a listing of one small folder plus one read, whatever the corpus size.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedops.errors import ConflictError, UsageError

_WIDTH = 12
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class RefRecord:
    """One record of a key's log: its sequence number (from 1) and its JSON payload."""

    key: str
    seq: int
    payload: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_ref_key(key: str) -> None:
    """Refuse empty keys and path tricks (``..``, hidden parts)."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise UsageError(f"invalid ref key {key!r}")


class RefLog:
    """Exclusive-create logs under ``root``; one folder per key (keys may contain ``/``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        check_ref_key(key)
        return self.root.joinpath(*key.split("/"))

    def _seqs(self, key: str) -> list[int]:
        d = self._dir(key)
        if not d.is_dir():
            return []
        seqs = []
        for name in os.listdir(d):
            if name.startswith(_TMP_PREFIX) or not name.endswith(".json"):
                continue
            stem = name[: -len(".json")]
            if stem.isdigit():
                seqs.append(int(stem))
        return sorted(seqs)

    def _read(self, key: str, seq: int) -> RefRecord:
        path = self._dir(key) / f"{seq:0{_WIDTH}d}.json"
        return RefRecord(key=key, seq=seq, payload=json.loads(path.read_text("utf-8")))

    def head(self, key: str) -> RefRecord | None:
        """The latest record of ``key``, or None if it has none."""
        seqs = self._seqs(key)
        return self._read(key, seqs[-1]) if seqs else None

    def records(self, key: str, *, last: int | None = None, before: int | None = None) -> list[RefRecord]:
        """Records of ``key``, oldest first: every one, or the ``last`` ones (before seq ``before``)."""
        seqs = [s for s in self._seqs(key) if before is None or s < before]
        return [self._read(key, s) for s in (seqs[-last:] if last else seqs)]

    def keys(self, prefix: str) -> list[str]:
        """Keys directly under ``prefix`` that have at least one record."""
        d = self._dir(prefix)
        if not d.is_dir():
            return []
        out = []
        for name in sorted(os.listdir(d)):
            if name.startswith("."):
                continue
            key = f"{prefix}/{name}"
            if (d / name).is_dir() and self._seqs(key):
                out.append(key)
        return out

    def append(self, key: str, expected_seq: int, payload: dict[str, Any]) -> RefRecord:
        """Publish ``payload`` as record ``expected_seq + 1``.

        Raises ConflictError if that slot is already taken, i.e. the log moved on since the caller
        read head ``expected_seq`` (0 for an empty log).
        """
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        seq = expected_seq + 1
        final = d / f"{seq:0{_WIDTH}d}.json"
        if final.exists():
            raise ConflictError(f"{key}: record {seq} already exists")
        tmp = d / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        data = json.dumps(payload, sort_keys=True).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, final)  # atomic and exclusive: fails if the slot is taken
        except FileExistsError:
            raise ConflictError(f"{key}: record {seq} was written by someone else first") from None
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(d)
        return RefRecord(key=key, seq=seq, payload=payload)
