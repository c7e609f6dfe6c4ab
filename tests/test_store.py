import json

import pyarrow as pa
import pytest

from embedops.errors import NotAStoreError, StoreError, StoreSchemaTooNewError
from embedops.store import META_FILE, SCHEMA_KEY, Migration, Store, resolve_store_uri


def test_new_store_records_its_schema_version(tmp_path):
    store = Store.open(str(tmp_path / "s"))
    meta = json.loads((store.root / META_FILE).read_text())
    assert meta["schema_version"] == store.schema_version


def test_tables_carry_the_schema_version(tmp_path):
    store = Store.open(str(tmp_path / "s"))
    tbl = store.table("things", pa.schema([pa.field("x", pa.int64())]))
    assert tbl.schema.metadata[SCHEMA_KEY.encode()] == str(store.schema_version).encode()


def test_store_written_by_newer_schema_is_refused_untouched(tmp_path):
    root = tmp_path / "s"
    Store.open(str(root), schema_version=7)
    before = (root / META_FILE).read_text()
    with pytest.raises(StoreSchemaTooNewError, match="schema version 7"):
        Store.open(str(root), schema_version=6)
    assert (root / META_FILE).read_text() == before


def test_older_store_is_migrated_in_order(tmp_path):
    root = tmp_path / "s"
    Store.open(str(root), schema_version=1)
    seen = []

    def add_column(store):
        seen.append(("1->2", store.root))

    def rename(store):
        seen.append(("2->3", store.root))

    store = Store.open(
        str(root), schema_version=3,
        migrations=[Migration(2, "rename things", rename), Migration(1, "add column", add_column)],
    )
    assert [s[0] for s in seen] == ["1->2", "2->3"]
    meta = json.loads((root / META_FILE).read_text())
    assert meta["schema_version"] == 3 and meta["migrations"] == ["add column", "rename things"]
    # Opening again migrates nothing.
    Store.open(str(root), schema_version=3, migrations=[Migration(1, "x", add_column)])
    assert len(seen) == 2 and store.schema_version == 3


def test_missing_migration_is_an_error(tmp_path):
    Store.open(str(tmp_path / "s"), schema_version=1)
    with pytest.raises(StoreError, match="no migration"):
        Store.open(str(tmp_path / "s"), schema_version=2, migrations=[])


def test_non_store_directory_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "important.txt").write_text("x")
    with pytest.raises(NotAStoreError, match="not an embedops store"):
        Store.open(str(tmp_path / "d"))


def test_unreachable_object_store_gives_clear_error(tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("EMBEDOPS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(StoreError, match="AWS_ACCESS_KEY_ID"):
        Store.open("s3://bucket/prefix")
    with pytest.raises(StoreError, match="s3://bucket/prefix"):
        Store.open("gs://bucket/prefix")


def test_store_uri_resolution(monkeypatch):
    monkeypatch.delenv("EMBEDOPS_STORE", raising=False)
    assert resolve_store_uri(None) == "./embedops-store"
    monkeypatch.setenv("EMBEDOPS_STORE", "/x/y")
    assert resolve_store_uri(None) == "/x/y"
    assert resolve_store_uri("/a") == "/a"


def test_compacting_merges_one_row_writes_of_registry_tables_and_leaves_index_tables(tmp_path):
    store = Store.open(str(tmp_path / "s"))
    schema = pa.schema([pa.field("n", pa.int64())])
    events = store.table("events", schema)
    for n in range(40):  # as the registry writes: one row a commit
        events.add(pa.table({"n": [n]}))
    index = store.create_table("index__x", pa.table({"n": [1]}))
    for n in range(40):
        index.add(pa.table({"n": [n]}))
    assert store.compact_tables(min_small_fragments=1000) == []  # below the threshold: nothing
    assert store.compact_tables() == ["events"]
    events = store.open_table("events")
    assert events.stats()["fragment_stats"]["num_fragments"] == 1
    assert sorted(events.to_arrow()["n"].to_pylist()) == list(range(40))
    assert store.open_table("index__x").stats()["fragment_stats"]["num_fragments"] == 41  # its versions are pinned
