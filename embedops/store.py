"""The store: one URI that holds every table, artifact and pointer embedops keeps.

Layout of a store directory (a LanceDB database with a few extra folders)::

    embedops.json             schema version of the store (see MIGRATIONS)
    <table>.lance/            LanceDB tables: corpora, corpus docs, models, indexes, events, ...
    refs/                     compare-and-swap logs (aliases, version counters), see embedops.refs
    artifacts/                model files, content-addressed and checksummed

Every table's Arrow schema carries ``embedops.schema_version`` in its metadata. Opening a store
written by a newer schema fails with :class:`StoreSchemaTooNewError`; an older one is migrated in
order by the functions in ``MIGRATIONS`` under an exclusive lock.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lancedb
import pyarrow as pa

from embedops import __version__
from embedops.errors import NotAStoreError, StoreError, StoreSchemaTooNewError
from embedops.refs import RefLog

SCHEMA_VERSION = 1
META_FILE = "embedops.json"
SCHEMA_KEY = "embedops.schema_version"
DEFAULT_STORE = "./embedops-store"
STORE_ENV = "EMBEDOPS_STORE"


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
        if "://" in uri and not uri.startswith("file://"):
            raise StoreError(
                f"store {uri!r}: only local stores are supported in this version. Object storage "
                "(s3://) uses the same layout with conditional writes for refs and is planned."
            )
        self.uri = uri
        self.root = Path(uri.removeprefix("file://")).expanduser().resolve()
        self.schema_version = schema_version
        self._migrations = {m.from_version: m for m in migrations}
        self._prepare(create)
        self.db = lancedb.connect(str(self.root))
        self.refs = RefLog(self.root / "refs")
        self.artifacts = self.root / "artifacts"

    @classmethod
    def open(cls, uri: str | None = None, **kwargs) -> "Store":
        return cls(resolve_store_uri(uri), **kwargs)

    # -- schema version and migrations --------------------------------------------------------------

    @property
    def meta_path(self) -> Path:
        return self.root / META_FILE

    def _read_meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.meta_path}: cannot read store metadata: {exc}") from exc

    def _prepare(self, create: bool) -> None:
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
                    _write_json_atomic(
                        self.meta_path,
                        {"schema_version": self.schema_version, "created_at": utcnow(),
                         "created_by_embedops": __version__},
                    )
        version = int(self._read_meta().get("schema_version", 0))
        if version > self.schema_version:
            raise StoreSchemaTooNewError(
                f"store {self.root} has schema version {version}, but this embedops ({__version__}) "
                f"understands up to {self.schema_version}. Upgrade embedops; the store was not touched."
            )
        if version < self.schema_version:
            self._migrate()

    def _lock(self):
        store = self

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
                        f"store {self.root} has schema version {version} and no migration to "
                        f"{version + 1} exists"
                    )
                migration.apply(self)
                version += 1
                meta.update(schema_version=version, migrated_at=utcnow())
                meta.setdefault("migrations", []).append(migration.description)
                _write_json_atomic(self.meta_path, meta)

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
        return str(self.root / f"{name}.lance")

    def storage_options(self) -> dict[str, str]:
        """Object-store options for Lance readers and writers of this store ({} for a local store)."""
        return {}

    def has_table(self, name: str) -> bool:
        """True once table ``name`` has a committed version (fragment files alone do not count)."""
        versions = self.root / f"{name}.lance" / "_versions"
        return versions.is_dir() and any(versions.iterdir())

    def table(self, name: str, schema: pa.Schema):
        """Open table ``name``, creating it empty with ``schema`` (versioned) if it is missing."""
        if self.has_table(name):
            tbl = self.db.open_table(name)
        else:
            tbl = self.db.create_table(name, schema=with_schema_version(schema), exist_ok=True)
        found = int((tbl.schema.metadata or {}).get(SCHEMA_KEY.encode(), b"0"))
        if found > self.schema_version:
            raise StoreSchemaTooNewError(
                f"table {name!r} in {self.root} has schema version {found}; this embedops "
                f"understands up to {self.schema_version}. Upgrade embedops."
            )
        return tbl

    def create_table(self, name: str, data: pa.Table):
        """Create table ``name`` holding ``data`` in a single commit (readers see all or nothing)."""
        return self.db.create_table(name, data=data, schema=with_schema_version(data.schema))

    def open_table(self, name: str, version: int | None = None):
        if not self.has_table(name):
            raise StoreError(f"table {name!r} does not exist in store {self.root}")
        return self.db.open_table(name, version=version) if version else self.db.open_table(name)

    def drop_table(self, name: str) -> None:
        if self.has_table(name):
            self.db.drop_table(name)
