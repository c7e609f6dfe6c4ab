"""Object storage for ``s3://`` stores: small JSON records with exclusive create, and artifact files.

LanceDB tables of an ``s3://bucket/prefix`` store live under that prefix and are read and written by
LanceDB itself (whose commits are conditional PUTs). This module holds the rest of the store on
the same bucket, with boto3:

* :class:`S3Objects` — get / put / exclusive create (``PutObject`` with ``If-None-Match: *``, which
  S3, MinIO and other S3-compatible servers honour) / list / upload / download;
* :class:`ObjectRefLog` — the compare-and-swap logs of :mod:`embedops.refs` on top of it: record
  ``n + 1`` of a key is created exclusively, so of several machines that all read head ``n``
  exactly one wins and the others get :class:`~embedops.errors.ConflictError`.

Credentials and endpoint come from the environment only (the standard ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` and, for a
plain-HTTP endpoint such as a local MinIO, ``AWS_ALLOW_HTTP=true``); nothing is written to the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedops.errors import ConflictError, StoreError
from embedops.refs import RefLog, RefRecord, check_ref_key

_WIDTH = 12


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"store {uri!r}: an s3 store URI looks like s3://bucket/prefix")
    return bucket, prefix.strip("/")


def s3_storage_options() -> dict[str, str]:
    """LanceDB / Lance storage options for S3, taken from the standard AWS_* environment variables."""
    env = os.environ
    pairs = {
        "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
        "aws_session_token": env.get("AWS_SESSION_TOKEN"),
        "aws_region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        "aws_endpoint": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        "allow_http": env.get("AWS_ALLOW_HTTP"),
    }
    return {k: v for k, v in pairs.items() if v}


@dataclass
class S3Objects:
    """Keys under ``s3://bucket/prefix``, through boto3 (configured from the environment)."""

    bucket: str
    prefix: str

    def __post_init__(self):
        try:
            import boto3
        except ImportError:  # pragma: no cover - depends on the installation
            raise StoreError("s3:// stores need boto3: pip install 'embedops[s3]'") from None
        self.client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, key: str) -> StoreError:
        hint = ""
        if type(exc).__name__ in ("NoCredentialsError", "EndpointConnectionError", "PartialCredentialsError"):
            hint = (" (credentials and endpoint come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION"
                    " and, for a non-AWS server, AWS_ENDPOINT_URL)")
        return StoreError(f"s3://{self.bucket}/{self._key(key)}: {exc}{hint}")

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None

    def write(self, key: str, data: bytes) -> None:
        """Create or replace (an object PUT is atomic: readers see the old or the new bytes)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from None

    def create(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if it does not exist (conditional PUT); False if it already did."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return False
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None

    def listdir(self, prefix: str) -> tuple[list[str], list[str]]:
        """(object names, sub-folder names) directly under ``prefix``."""
        full = self._key(prefix).rstrip("/") + "/" if prefix else (self.prefix + "/" if self.prefix else "")
        files, dirs = [], []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            files += [o["Key"][len(full):] for o in page.get("Contents", [])]
            dirs += [p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(files), sorted(dirs)

    def read_size(self, key: str) -> int | None:
        """Size in bytes of ``key``, or None if there is no such object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None

    def is_empty(self) -> bool:
        full = self.prefix + "/" if self.prefix else ""
        resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        return resp.get("KeyCount", 0) == 0

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def upload(self, path: Path, key: str) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def download(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
        self.client.download_file(self.bucket, self._key(key), str(tmp))
        tmp.replace(path)


class ObjectRefLog(RefLog):
    """:class:`embedops.refs.RefLog` over :class:`S3Objects` (same methods, same guarantees)."""

    def __init__(self, objects: S3Objects, root: str = "refs"):  # RefLog.__init__ takes a local folder: not called
        self.objects = objects
        self.root = root

    def _prefix(self, key: str) -> str:
        check_ref_key(key)
        return f"{self.root}/{key}"

    def _seqs(self, key: str) -> list[int]:
        files, _ = self.objects.listdir(self._prefix(key))
        return sorted(int(f[:-5]) for f in files if f.endswith(".json") and f[:-5].isdigit())

    def record_key(self, key: str, seq: int) -> str:
        """The object key of record ``seq`` of ``key``'s log."""
        return f"{self._prefix(key)}/{seq:0{_WIDTH}d}.json"

    def _read(self, key: str, seq: int) -> RefRecord:
        data = self.objects.read(self.record_key(key, seq))
        if data is None:
            raise StoreError(f"{key}: record {seq} vanished while reading")
        return RefRecord(key=key, seq=seq, payload=json.loads(data))

    def keys(self, prefix: str) -> list[str]:
        _, dirs = self.objects.listdir(self._prefix(prefix))
        return [f"{prefix}/{d}" for d in dirs if not d.startswith(".") and self._seqs(f"{prefix}/{d}")]

    def append(self, key: str, expected_seq: int, payload: dict[str, Any]) -> RefRecord:
        seq = expected_seq + 1
        data = json.dumps(payload, sort_keys=True).encode("utf-8")
        if not self.objects.create(self.record_key(key, seq), data):
            raise ConflictError(f"{key}: record {seq} was written by someone else first")
        return RefRecord(key=key, seq=seq, payload=payload)
