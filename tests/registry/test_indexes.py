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
