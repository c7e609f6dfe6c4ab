"""Peak RSS of an index build at 1x and 10x corpus size (SciFact texts repeated). The encoder
streams chunk by chunk, so peak memory must not grow in proportion to the corpus. A tiny random
BERT keeps the 10x run short on 2 cores; memory behaviour does not depend on model size."""

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
    def hwm_mb():  # VmHWM: this process's peak RSS (ru_maxrss would include the forking parent's)
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    before = hwm_mb()
    report = IndexBuild(reg, "tiny@1", "docs", ann_threshold=10**9).run()
    print(json.dumps({"docs": report.index.doc_count, "peak_rss_mb": hwm_mb(), "rss_before_build_mb": before,
                      "docs_per_s": report.docs_per_second}))
    """
)


def test_peak_rss_at_1x_and_10x(scifact, tmp_path, benchmark):
    from embedops.registry import Registry
    from embedops.store import Store

    docs = read_documents(scifact)
    model = make_tiny_model(tmp_path / "tiny", hidden=64, layers=2)
    out = {}
    for factor in (1, 10):
        path = tmp_path / f"docs-{factor}.jsonl"
        with open(path, "w") as fh:
            for r in range(factor):
                for d in docs:
                    fh.write(json.dumps({"_id": f"{d.id}-{r}", "title": d.title, "text": d.text}) + "\n")
        store = tmp_path / f"store-{factor}"
        reg = Registry(Store.open(str(store)))
        reg.models.register("tiny", model)
        reg.corpora.add("docs", path)
        run = lambda: subprocess.run([sys.executable, "-c", CHILD, str(store)], capture_output=True, text=True, check=True)
        proc = benchmark.pedantic(run, rounds=1, iterations=1) if factor == 10 else run()
        out[f"{factor}x"] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["peak_ratio_10x_over_1x"] = out["10x"]["peak_rss_mb"] / out["1x"]["peak_rss_mb"]
    record("index_build_peak_rss", out)
    assert out["10x"]["docs"] == 10 * out["1x"]["docs"]
    assert out["peak_ratio_10x_over_1x"] < 2
