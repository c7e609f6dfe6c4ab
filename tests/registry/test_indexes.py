import pytest

from embedops.errors import IndexNotFoundError, IndexStateError
from embedops.registry import IndexStatus, Registry
from embedops.store import Store


def test_index_lifecycle_is_recorded_and_audited(tmp_path):
    reg = Registry(Store.open(str(tmp_path / "s")))
    rec = reg.indexes.create("tiny@1", "ops", params={"precision": "fp32"})
    assert rec.status is IndexStatus.BUILDING and rec.table_name == f"index__{rec.index_id}"
    ready = reg.indexes.update(rec.index_id, status=IndexStatus.READY, doc_count=5, table_version=3)
    assert reg.indexes.get(rec.index_id) == ready
    assert (ready.doc_count, ready.table_version, ready.params) == (5, 3, {"precision": "fp32"})
    with pytest.raises(IndexStateError, match="ready to building"):
        reg.indexes.update(rec.index_id, status=IndexStatus.BUILDING)
    actions = [e.action for e in reg.history() if e.subject == rec.index_id]
    assert actions == ["index.create", "index.ready"]
    with pytest.raises(IndexNotFoundError):
        reg.indexes.get("nope")


def test_an_index_row_naming_another_table_is_refused_before_it_is_read_or_dropped(tmp_path):
    from embedops.errors import UnsafePathError

    reg = Registry(Store.open(str(tmp_path / "s")))
    rec = reg.indexes.create("tiny@1", "ops")
    reg.indexes.update(rec.index_id, status=IndexStatus.FAILED)
    reg.indexes._table().update(where=f"index_id = '{rec.index_id}'", values={"table_name": "indexes"})
    with pytest.raises(UnsafePathError, match="names table 'indexes'"):
        reg.drop(rec.index_id)
    assert reg.store.has_table("indexes")  # the registry's own table was not dropped
