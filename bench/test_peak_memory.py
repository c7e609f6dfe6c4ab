"""Peak RSS of an index build at 1x and 10x corpus size (SciFact texts repeated). The encoder
streams chunk by chunk, so peak memory must not grow in proportion to the corpus. A tiny random
BERT keeps the 10x run short on 2 cores; memory behaviour does not depend on model depth.

The second benchmark builds an IVF-PQ ANN index too (``ann_threshold=0``) and measures its recall
on a sample, as every large build does: the sample is read batch by batch, so that step must stay
flat as well. Its model is 384 wide (all-MiniLM-L6-v2's width, one layer) so the vector column is
as large as a real one (80 MB at 10x), and the ONNX export is made beforehand in the parent so the
child's peak is the build itself, not the one-off export with torch loaded."""

import json
import subprocess
import sys
import textwrap

from conftest import record
from helpers import make_tiny_model
from embedops.corpus import read_documents

CHILD = textwrap.dedent(
    """
    import json, sys
    from embedops.registry import Registry
    from embedops.store import Store
    from embedops.reembed.build import IndexBuild
    reg = Registry(Store.open(sys.argv[1]))
    ann_threshold = int(sys.argv[2])
    def hwm_mb():  # VmHWM: this process's peak RSS (ru_maxrss would include the forking parent's)
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    before = hwm_mb()
    report = IndexBuild(reg, "tiny@1", "docs", ann_threshold=ann_threshold).run()
    ann = report.checks.get("ann", {})
    print(json.dumps({"docs": report.index.doc_count, "peak_rss_mb": hwm_mb(), "rss_before_build_mb": before,
                      "docs_per_s": report.docs_per_second, "ann_recall@10": ann.get("recall@10_vs_exact"),
                      "ann_partitions": ann.get("partitions")}))
    """
)


def _store(scifact, tmp_path, model, factor: int, *, export: bool = False):
    from embedops.registry import Registry
    from embedops.store import Store

    docs = read_documents(scifact)
    path = tmp_path / f"docs-{factor}.jsonl"
    with open(path, "w") as fh:
        for r in range(factor):
            for d in docs:
                fh.write(json.dumps({"_id": f"{d.id}-{r}", "title": d.title, "text": d.text}) + "\n")
    store = tmp_path / f"store-{model.name}-{factor}"
    reg = Registry(Store.open(str(store)))
    reg.models.register("tiny", model)
    reg.corpora.add("docs", path)
    if export:
        from embedops.registry import ensure_export

        ensure_export(reg, "tiny@1", "fp32")
    return store


def _child(store, ann_threshold: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(store), str(ann_threshold)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_rss_at_1x_and_10x(scifact, tmp_path, benchmark):
    model = make_tiny_model(tmp_path / "tiny", hidden=64, layers=2)
    out = {}
    for factor in (1, 10):
        store = _store(scifact, tmp_path, model, factor)
        run = lambda: _child(store, 10**9)
        out[f"{factor}x"] = benchmark.pedantic(run, rounds=1, iterations=1) if factor == 10 else run()
    out["peak_ratio_10x_over_1x"] = out["10x"]["peak_rss_mb"] / out["1x"]["peak_rss_mb"]
    record("index_build_peak_rss", out)
    assert out["10x"]["docs"] == 10 * out["1x"]["docs"]
    assert out["peak_ratio_10x_over_1x"] < 2


def test_peak_rss_with_an_ann_index_at_1x_and_10x(scifact, tmp_path, benchmark):
    model = make_tiny_model(tmp_path / "tiny384", hidden=384, layers=1)
    out = {}
    for factor in (1, 10):
        store = _store(scifact, tmp_path, model, factor, export=True)
        run = lambda: _child(store, 0)
        out[f"{factor}x"] = benchmark.pedantic(run, rounds=1, iterations=1) if factor == 10 else run()
    out["peak_ratio_10x_over_1x"] = out["10x"]["peak_rss_mb"] / out["1x"]["peak_rss_mb"]
    out["vector_column_mb_10x"] = out["10x"]["docs"] * 384 * 4 / 2**20
    record("index_build_ann_peak_rss", out)
    assert out["10x"]["docs"] == 10 * out["1x"]["docs"] and out["10x"]["ann_recall@10"] is not None
    # Target (issue #14): within 1.2. Not met: LanceDB's IVF-PQ build itself grows with the table
    # (see the next benchmark and docs/BENCHMARKS.md); this bound only catches a regression.
    assert out["peak_ratio_10x_over_1x"] < 2


ANN_CHILD = textwrap.dedent(
    """
    import json, sys, tempfile, warnings
    warnings.simplefilter("ignore")
    import numpy as np, pyarrow as pa, lancedb
    from embedops.index.ann import measure_ann_recall, sample_vectors
    def hwm_mb():
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    n, dim = int(sys.argv[1]), 384
    db, rng, tbl = lancedb.connect(tempfile.mkdtemp()), np.random.default_rng(0), None
    for start in range(0, n, 8192):
        v = rng.standard_normal((min(8192, n - start), dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        t = pa.table({"id": [str(i) for i in range(start, start + len(v))],
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), dim)})
        if tbl is None:
            tbl = db.create_table("x", t)
        else:
            tbl.add(t)
    before = hwm_mb()
    tbl.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ",
                     num_partitions=int(np.sqrt(n)), num_sub_vectors=dim // 8)
    after_index = hwm_mb()
    recall = measure_ann_recall(tbl, sample_vectors(tbl, 100), 10)
    print(json.dumps({"rows": n, "rss_before_mb": before, "peak_after_create_index_mb": after_index,
                      "peak_after_recall_mb": hwm_mb(), "recall@10": recall["recall@10_vs_exact"]}))
    """
)


def test_ann_step_peak_rss_vs_rows(benchmark):
    """Where the growth of the build with an ANN index comes from: the ANN step alone (LanceDB's
    create_index, then embedops' recall check: sampled reads, serving-setting queries) on random
    384-d unit vectors, each size in its own process."""
    out = {}
    for rows in (5_183, 51_830, 103_660, 207_320):
        run = lambda: json.loads(subprocess.run([sys.executable, "-c", ANN_CHILD, str(rows)], capture_output=True,
                                                text=True, check=True).stdout.strip().splitlines()[-1])
        out[str(rows)] = benchmark.pedantic(run, rounds=1, iterations=1) if rows == 51_830 else run()
    for r in out.values():
        r["create_index_mb"] = r["peak_after_create_index_mb"] - r["rss_before_mb"]
        r["recall_check_mb"] = r["peak_after_recall_mb"] - r["peak_after_create_index_mb"]
    record("ann_step_peak_rss_vs_rows", out)
    assert all(r["recall@10"] > 0 for r in out.values())
