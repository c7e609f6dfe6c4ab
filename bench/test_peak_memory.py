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
        from embedops.reembed import ensure_export

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
    assert out["peak_ratio_10x_over_1x"] < 1.2
