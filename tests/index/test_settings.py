"""Index settings: one typed record of how an index keeps and searches its vectors (issue #36)."""

import pytest

from embedops.errors import UsageError
from embedops.index import IndexParams, IndexSettings


@pytest.mark.parametrize("changes, message", [
    ({"ann": "hnsw"}, "index setting 'ann': unknown kind 'hnsw'; choose one of auto, none, ivf_pq"),
    ({"nprobes": 0}, "index setting 'nprobes': must be a whole number >= 1, got 0"),
    ({"partitions": 2.5}, "index setting 'partitions': must be a whole number >= 1, got 2.5"),
    ({"refine_factor": True}, "index setting 'refine_factor': must be a whole number >= 1, got True"),
    ({"vectors": "int4"}, "index setting 'vectors': unknown kind 'int4'; choose one of float32, int8, binary"),
    ({"vectors": "binary", "rescore": "fp16"}, "index setting 'rescore': unknown kind 'fp16'"),
    ({"vectors": "int8", "ann": "ivf_pq"}, "index setting 'ann': 'ivf_pq' does not index int8 vectors; choose one of auto, none"),
    ({"vectors": "binary", "ann": "ivf_hnsw_sq"}, "'ivf_hnsw_sq' does not index binary vectors; choose one of auto, none, ivf_flat"),
    ({"dims": 4}, "index setting 'dims': must be a whole number >= 8, got 4"),
])
def test_a_bad_setting_is_refused_naming_its_key(changes, message):
    with pytest.raises(UsageError, match=message):
        IndexSettings(**changes)


def test_the_ann_kind_follows_the_threshold_and_none_never_builds_one():
    assert IndexSettings().ann_kind(99_999) is None and IndexSettings().ann_kind(100_000) == "IVF_PQ"
    assert IndexSettings(ann="ivf_rq", ann_threshold=10).ann_kind(10) == "IVF_RQ"
    assert IndexSettings(ann="none", ann_threshold=1).ann_kind(10**9) is None
    assert IndexSettings(vectors="binary", ann_threshold=10).ann_kind(10) == "IVF_FLAT"  # hamming: LanceDB's one kind
    assert IndexSettings(vectors="int8", ann_threshold=1).ann_kind(10**9) is None  # scanned exactly, in memory


def test_settings_travel_with_the_record_and_older_records_read_as_the_defaults():
    settings = IndexSettings(ann="ivf_hnsw_sq", nprobes=7, refine_factor=2)
    params = IndexParams(dim=32, index=settings).to_dict()
    assert IndexParams.from_dict(params).index == settings and params["index"]["ann"] == "ivf_hnsw_sq"
    assert IndexParams.from_dict(params).index.search.to_dict() == {"nprobes": 7, "refine_factor": 2}
    old = {"precision": "fp32", "dim": 384}  # an index built before settings were recorded
    assert IndexParams.from_dict(old).index == IndexSettings()


def test_index_show_names_the_settings_an_index_was_built_with(reg, tmp_path):
    from embedops.reembed import IndexBuild
    from helpers import StoreCli, write_jsonl

    reg.corpora.add("ops", write_jsonl(tmp_path / "d.jsonl", [{"_id": f"d{i}", "text": f"note {i}"} for i in range(5)]))
    index = IndexBuild(reg, "tiny@1", "ops", settings=IndexSettings(ann="none", nprobes=9)).run().index
    shown = StoreCli(str(reg.store.root))("index", "show", index.index_id).stdout
    assert "none from 100,000 documents" in shown and "nprobes 9, refine factor 5" in shown
    assert "none (exact search)" in shown and max(len(line) for line in shown.splitlines()) <= 80
