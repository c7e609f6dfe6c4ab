"""The store: one URI that holds every table, artifact and pointer embedops keeps.

Layout of a store directory (a LanceDB database with a few extra folders)::

    embedops.json             schema version of the store (see MIGRATIONS)
    <table>.lance/            LanceDB tables: corpora, corpus docs, models, indexes, events, ...
    refs/                     compare-and-swap logs (aliases, version counters), see embedops.refs
    artifacts/                model files, content-addressed and checksummed

The same layout works on object storage: ``s3://bucket/prefix`` (credentials and endpoint from the
standard AWS_* environment variables, see :mod:`embedops.objects`). LanceDB commits its tables with
conditional PUTs, refs use exclusive-create PUTs, artifacts are uploaded whole and verified by
sha256 after download into a local working folder (``$EMBEDOPS_CACHE_DIR``, default
``~/.cache/embedops``), which also holds caches such as generated queries and pipeline state.

Every table's Arrow schema carries ``embedops.schema_version`` in its metadata. Opening a store
written by a newer schema fails with :class:`StoreSchemaTooNewError`; an older one is migrated in
order by the functions in ``MIGRATIONS`` under an exclusive lock.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from embedops import __version__
from embedops.data import cache_dir
from embedops.errors import ChecksumMismatchError, NotAStoreError, StoreError, StoreSchemaTooNewError, UnsafePathError
from embedops.objects import ObjectRefLog, S3Objects, s3_storage_options, split_s3_uri
from embedops.refs import RefLog

SCHEMA_VERSION = 1
META_FILE = "embedops.json"
SCHEMA_KEY = "embedops.schema_version"
DEFAULT_STORE = "./embedops-store"
STORE_ENV = "EMBEDOPS_STORE"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """Moves a store from ``from_version`` to ``from_version + 1``."""

    from_version: int
    description: str
    apply: Callable[["Store"], None]


# Schema 1 is the first released schema: there is nothing to migrate from yet. Each future
# schema change appends one Migration here and bumps SCHEMA_VERSION.
MIGRATIONS: tuple[Migration, ...] = ()


def resolve_store_uri(uri: str | None = None) -> str:
    """The store URI to use: the explicit one, else $EMBEDOPS_STORE, else ./embedops-store."""
    return uri or os.environ.get(STORE_ENV) or DEFAULT_STORE


def utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def with_schema_version(schema: pa.Schema, version: int = SCHEMA_VERSION) -> pa.Schema:
    meta = dict(schema.metadata or {})
    meta[SCHEMA_KEY.encode()] = str(version).encode()
    return schema.with_metadata(meta)


class Store:
    """An opened store. Cheap to create; holds no global state. Use :meth:`open`."""

    def __init__(
        self,
        uri: str,
        *,
        create: bool = True,
        schema_version: int = SCHEMA_VERSION,
        migrations: Sequence[Migration] = MIGRATIONS,
    ):
        if "://" in uri and not uri.startswith(("file://", "s3://")):
            raise StoreError(f"store {uri!r}: use a local path, file://PATH or s3://bucket/prefix")
        self.uri = uri
        self.schema_version = schema_version
        self._migrations = {m.from_version: m for m in migrations}
        self.objects: S3Objects | None = None
        if uri.startswith("s3://"):
            bucket, prefix = split_s3_uri(uri)
            self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
            self.objects = S3Objects(bucket, prefix)
            # Local working folder of an object store: verified copies of artifacts, caches.
            cache = cache_dir()
            self.root = (cache / "s3" / bucket / (prefix or "_")).expanduser().resolve()
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = Path(uri.removeprefix("file://")).expanduser().resolve()
        self._prepare(create)
        import lancedb  # imported here so that modules needing only records (the GPU generator) load without it

        if self.objects is not None:
            self.db = lancedb.connect(self.uri, storage_options=s3_storage_options())
            self.refs = ObjectRefLog(self.objects)
        else:
            self.db = lancedb.connect(str(self.root))
            self.refs = RefLog(self.root / "refs")
        self.artifacts = self.root / "artifacts"

    @property
    def location(self) -> str:
        """Where the store is, for messages: its directory, or its s3:// URI."""
        return self.uri if self.objects is not None else str(self.root)

    @classmethod
    def open(cls, uri: str | None = None, **kwargs) -> "Store":
        return cls(resolve_store_uri(uri), **kwargs)

    # -- schema version and migrations --------------------------------------------------------------

    @property
    def meta_path(self) -> Path:
        return self.root / META_FILE

    def _read_meta(self) -> dict:
        try:
            if self.objects is not None:
                data = self.objects.read(META_FILE)
                if data is None:
                    raise OSError("missing")
                return json.loads(data)
            return json.loads(self.meta_path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.location}/{META_FILE}: cannot read store metadata: {exc}") from exc

    def _write_meta(self, meta: dict) -> None:
        if self.objects is not None:
            self.objects.write(META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
        else:
            _write_json_atomic(self.meta_path, meta)

    def _prepare(self, create: bool) -> None:
        new_meta = {"schema_version": self.schema_version, "created_at": utcnow(), "created_by_embedops": __version__}
        if self.objects is not None:
            if self.objects.read(META_FILE) is None:
                if not self.objects.is_empty():
                    raise NotAStoreError(f"{self.uri} holds objects but no {META_FILE}: not an embedops store")
                if not create:
                    raise NotAStoreError(f"no embedops store at {self.uri}")
                self.objects.create(META_FILE, json.dumps(new_meta, indent=2, sort_keys=True).encode())
        else:
            if self.root.exists() and not self.root.is_dir():
                raise NotAStoreError(f"{self.root} is a file, not an embedops store directory")
            if not self.meta_path.exists():
                if self.root.is_dir() and any(not p.name.startswith(".") for p in self.root.iterdir()):
                    raise NotAStoreError(
                        f"{self.root} is not empty and has no {META_FILE}: not an embedops store. "
                        "Point --store (or $EMBEDOPS_STORE) at a new or existing store directory."
                    )
                if not create:
                    raise NotAStoreError(f"no embedops store at {self.root}")
                self.root.mkdir(parents=True, exist_ok=True)
                with self._lock():
                    if not self.meta_path.exists():
                        _write_json_atomic(self.meta_path, new_meta)
        version = int(self._read_meta().get("schema_version", 0))
        if version > self.schema_version:
            raise StoreSchemaTooNewError(
                f"store {self.location} has schema version {version}, but this embedops ({__version__}) "
                f"understands up to {self.schema_version}. Upgrade embedops; the store was not touched."
            )
        if version < self.schema_version:
            self._migrate()

    def _lock(self):
        """Exclusive lock for migrations: flock on a local store, a lock object on object storage."""
        store = self
        if self.objects is not None:
            class _ObjectLock:
                def __enter__(self):
                    if not store.objects.create(".lock", utcnow().encode()):
                        raise StoreError(f"{store.uri}/.lock exists: another process is migrating this store "
                                         "(delete the object if that process died)")
                    return self

                def __exit__(self, *exc):
                    store.objects.delete(".lock")

            return _ObjectLock()

        class _Lock:
            def __enter__(self):
                self.fh = open(store.root / ".lock", "a+")
                fcntl.flock(self.fh, fcntl.LOCK_EX)
                return self

            def __exit__(self, *exc):
                fcntl.flock(self.fh, fcntl.LOCK_UN)
                self.fh.close()

        return _Lock()

    def _migrate(self) -> None:
        with self._lock():
            meta = self._read_meta()
            version = int(meta.get("schema_version", 0))
            while version < self.schema_version:
                migration = self._migrations.get(version)
                if migration is None:
                    raise StoreError(
                        f"store {self.location} has schema version {version} and no migration to "
                        f"{version + 1} exists"
                    )
                migration.apply(self)
                version += 1
                meta.update(schema_version=version, migrated_at=utcnow())
                meta.setdefault("migrations", []).append(migration.description)
                self._write_meta(meta)

    # -- tables -------------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            resp = self.db.list_tables(page_token=token)
            names.extend(resp.tables)
            token = resp.page_token
            if not token:
                return names

    def table_uri(self, name: str) -> str:
        """Where table ``name``'s Lance dataset lives (for engines that write Lance directly)."""
        if self.objects is not None:
            return f"{self.uri}/{name}.lance"
        return str(self.root / f"{name}.lance")

    def storage_options(self) -> dict[str, str]:
        """Object-store options for Lance readers and writers of this store ({} for a local store)."""
        return s3_storage_options() if self.objects is not None else {}

    def has_table(self, name: str) -> bool:
        """True once table ``name`` has a committed version (fragment files alone do not count)."""
        if self.objects is not None:
            files, _ = self.objects.listdir(f"{name}.lance/_versions")
            return bool(files)
        versions = self.root / f"{name}.lance" / "_versions"
        return versions.is_dir() and any(versions.iterdir())

    # -- locks --------------------------------------------------------------------------------------

    def lock(self, name: str, *, what: str, wait: bool = False, on_wait=None):
        """A cross-process lock named ``name`` on this store (see :mod:`embedops.locks`): a file lock
        on a local store, a lease object on ``s3://``. Use it as a context manager; raises
        :class:`~embedops.errors.LockHeldError` when held elsewhere unless ``wait``."""
        from embedops.locks import FileLock, ObjectLease
        from embedops.records import check_name

        check_name("lock", name)
        if self.objects is not None:
            return ObjectLease(self.objects, name, what=what, wait=wait, on_wait=on_wait)
        return FileLock(self.root / "locks" / f"{name}.lock", what=what, wait=wait, on_wait=on_wait)

    # -- artifacts ----------------------------------------------------------------------------------

    def artifact_dir(self, artifact: str, files=()) -> Path:
        """The local folder of artifact ``artifact`` (a path read back from a store row), after
        checking that it and every file path in ``files`` stay inside the store's ``artifacts/``:
        ``artifacts/<kind>/<sha256>``, relative file paths without ``..``. Raises
        :class:`~embedops.errors.UnsafePathError` before anything is read or written otherwise."""
        parts = str(artifact).split("/")
        if (len(parts) != 3 or parts[0] != "artifacts" or not parts[1].replace("-", "").isalnum()
                or len(parts[2]) != 64 or any(c not in "0123456789abcdef" for c in parts[2])):
            raise UnsafePathError(f"store {self.location}: artifact path {artifact!r} read from the store is not "
                                  "artifacts/<kind>/<sha256>; refusing to use it (the row was altered)")
        path = self.root / artifact
        for f in files:
            rel = str(f.path)
            bits = rel.replace("\\", "/").split("/")
            if (not rel or rel.startswith("/") or "\\" in rel or ":" in bits[0]
                    or any(b in ("", ".", "..") for b in bits)):
                raise UnsafePathError(f"store {self.location}: file path {rel!r} of artifact {artifact} points outside "
                                      "the artifact; refusing to use it (the row was altered)")
        return path

    def publish(self, artifact: str, files) -> None:
        """Make artifact folder ``artifact`` (relative to the store, already written under
        :attr:`root`) visible to every user of the store: uploads it on object storage."""
        if self.objects is None:
            return
        for f in files:
            key = f"{artifact}/{f.path}"
            if self.objects.read_size(key) != f.size:
                self.objects.upload(self.root / artifact / f.path, key)

    def materialize(self, artifact: str, files) -> Path:
        """A local folder holding artifact ``artifact``: downloads missing or changed files from object
        storage. Paths are checked first (:meth:`artifact_dir`); each download lands in a private
        temporary file and becomes visible only once its size and sha256 match the record (callers
        still verify every checksum before use)."""
        path = self.artifact_dir(artifact, files)
        if self.objects is not None:
            import tempfile

            from embedops.checksums import sha256_file

            for f in files:
                local = path / f.path
                if local.is_file() and local.stat().st_size == f.size and sha256_file(local) == f.sha256:
                    continue
                staging = self.root / "artifacts" / ".staging"
                staging.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=staging, prefix="download-")
                os.close(fd)
                tmp = Path(tmp_name)
                try:
                    self.objects.download(f"{artifact}/{f.path}", tmp)
                    got = sha256_file(tmp)
                    if tmp.stat().st_size != f.size or got != f.sha256:
                        raise ChecksumMismatchError(artifact, [f"{f.path}: downloaded sha256 is {got[:16]}..., "
                                                               f"expected {f.sha256[:16]}..."])
                    local.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, local)
                finally:
                    tmp.unlink(missing_ok=True)
        return path

    def table(self, name: str, schema: pa.Schema):
        """Open table ``name``, creating it empty with ``schema`` (versioned) if it is missing."""
        if self.has_table(name):
            tbl = self.db.open_table(name)
        else:
            tbl = self.db.create_table(name, schema=with_schema_version(schema), exist_ok=True)
        found = int((tbl.schema.metadata or {}).get(SCHEMA_KEY.encode(), b"0"))
        if found > self.schema_version:
            raise StoreSchemaTooNewError(
                f"table {name!r} in {self.location} has schema version {found}; this embedops "
                f"understands up to {self.schema_version}. Upgrade embedops."
            )
        return tbl

    def compact_tables(self, names: list[str] | None = None, *, min_small_fragments: int = 32) -> list[str]:
        """Merge the one-row fragments that registry writes leave (every ``add`` or ``update`` is a
        fragment; a store with 200 indexes read its index table 23x slower before this), in each
        table of ``names`` (default: the registry's tables, not index or corpus tables) with at least
        ``min_small_fragments`` of them. Best effort: a table another writer is changing at that
        moment is left for the next call. Returns the tables compacted. A serve process calls it
        now and then; old versions go after LanceDB's default of 7 days."""
        done = []
        for name in names if names is not None else [n for n in self.table_names()
                                                     if not n.startswith(("index__", "corpus__"))]:
            try:
                tbl = self.db.open_table(name)
                if tbl.stats()["fragment_stats"]["num_small_fragments"] >= min_small_fragments:
                    tbl.optimize()
                    done.append(name)
            except Exception as exc:  # an optimisation only: never fail the caller for it
                _log.warning("compacting table %r of %s skipped: %s", name, self.location, exc)
        return done

    def create_table(self, name: str, data: pa.Table):
        """Create table ``name`` holding ``data`` in a single commit (readers see all or nothing)."""
        return self.db.create_table(name, data=data, schema=with_schema_version(data.schema))

    def open_table(self, name: str, version: int | None = None):
        if not self.has_table(name):
            raise StoreError(f"table {name!r} does not exist in store {self.location}")
        return self.db.open_table(name, version=version) if version else self.db.open_table(name)

    def drop_table(self, name: str) -> None:
        if self.has_table(name):
            self.db.drop_table(name)
