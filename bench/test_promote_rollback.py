"""Time to promote and to roll back for a 5k-doc and a 100k-doc index: an alias switch touches only
the alias's compare-and-swap log, so it must not grow with index size. The promotion is the guarded
one: it finds and checks the guard report that authorises it (a passing report bound to the index,
its model, the policy and production's current index), as every promotion must."""

import numpy as np
import pyarrow as pa
import pytest

from conftest import record
from embedops.registry import IndexStatus, Policy, Registry, ReportBinding
from embedops.index import index_schema
from embedops.store import Store

RESULTS = {}


def _synthetic_index(reg, n, dim=384, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rec = reg.indexes.create("synthetic@1", "bench")
    data = pa.Table.from_arrays(
        [pa.array([f"d{i}" for i in range(n)]), pa.array(["h"] * n),
         pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), dim)], schema=index_schema(dim))
    reg.store.create_table(rec.table_name, data)
    return reg.indexes.update(rec.index_id, status=IndexStatus.READY, doc_count=n, table_version=1)


def _one_doc(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"_id": "d0", "text": "one document"}\n')
    return path


@pytest.mark.parametrize("mode", ["guarded", "override"])
@pytest.mark.parametrize("docs", [5_000, 100_000])
def test_promote_and_rollback_time_does_not_grow_with_size(benchmark, tmp_path, docs, mode):
    reg = Registry(Store.open(str(tmp_path / "s")))
    a, b = _synthetic_index(reg, docs, seed=1), _synthetic_index(reg, docs, seed=2)
    reg.corpora.add("bench", _one_doc(tmp_path))
    reg.models.register("synthetic", "bundled:all-MiniLM-L6-v2")
    reg.promote(a.index_id, reason="start", override=True)
    gates = [{"name": g, "status": "pass"} for g in Policy().required_gates]
    reg.reports.put(ReportBinding(b.index_id, 1, reg.models.get("synthetic@1").digest, Policy().hash, "production",
                                  a.index_id, "bench", reg.corpora.info("bench").version, "gold"),
                    model_ref="synthetic@1", verdict="pass", inputs={}, gates=gates)

    def promote_then_rollback():
        if mode == "guarded":
            reg.promote(b.index_id, reason="bench")  # the report above authorises it each time
        else:
            reg.promote(b.index_id, reason="bench", override=True)  # no report read; one audit row more
        reg.rollback(reason="bench")

    benchmark.pedantic(promote_then_rollback, rounds=30, iterations=1)
    RESULTS[(mode, docs)] = benchmark.stats.stats.median
    if len(RESULTS) == 4:
        ms = {f"{m}_{d}": 1000 * v for (m, d), v in RESULTS.items()}
        data = {"median_ms_promote_plus_rollback": ms,
                "ratio_100k_over_5k_guarded": RESULTS[("guarded", 100_000)] / RESULTS[("guarded", 5_000)],
                "ratio_guarded_over_override_100k": RESULTS[("guarded", 100_000)] / RESULTS[("override", 100_000)]}
        record("promote_rollback_vs_size", data)
        assert data["ratio_100k_over_5k_guarded"] < 3
