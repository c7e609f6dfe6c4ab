"""Peak memory and time per step of ``embedops train`` at its defaults on a CPU: MNRL (what the
default was) vs ``loss="auto"`` (GradCache, CachedMultipleNegativesRankingLoss, for steps this big),
side by side in one run.

The step is the one issue #18 measured at 11 GB: all-MiniLM-L6-v2, batch 32, three mined negatives
per pair (SciFact abstracts), the model's 256 tokens, fp32 on a CPU. Each case runs in its own
process, so its peak resident set (``ru_maxrss``) is its own; the time per step includes loading the
model and registering the result, as a whole ``train()`` call does.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import record

STEPS = 3
BATCH = 32
CHILD = textwrap.dedent("""
    import json, resource, sys, tempfile, time
    sys.path.insert(0, "bench")
    from _pairs import step_pairs
    from embedops.registry import Registry
    from embedops.store import Store
    from embedops.trainer.train import TrainConfig, train

    scifact, loss, steps, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    reg = Registry(Store.open(tempfile.mkdtemp()))
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    pairs = step_pairs(scifact, steps, batch)
    config = TrainConfig(epochs=1, batch_size=batch, eval_fraction=0.0, max_steps=steps, loss=loss,
                         interpolate=None, max_seq_length=None)  # the model's own 256 tokens, as measured before
    t = time.perf_counter()
    result = train(reg, "minilm@1", pairs, config=config)
    seconds = time.perf_counter() - t
    print(json.dumps({"loss_used": result.model.params["loss_used"], "seconds_per_step": seconds / steps,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def test_train_peak_memory_mnrl_vs_auto(benchmark, scifact):
    def run(loss: str) -> dict:
        out = subprocess.run([sys.executable, "-c", CHILD, str(scifact), loss, str(STEPS), str(BATCH)],
                             capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        return json.loads(out.stdout.strip().splitlines()[-1])

    cases = {"mnrl": run("mnrl")}
    cases["auto"] = benchmark.pedantic(lambda: run("auto"), rounds=1, iterations=1)
    assert cases["auto"]["loss_used"] == "cached-mnrl"
    results = {f"{case}_{k}": v for case, data in cases.items() for k, v in data.items()} | {
        "memory_ratio_auto_vs_mnrl": cases["auto"]["peak_rss_mib"] / cases["mnrl"]["peak_rss_mib"],
        "time_ratio_auto_vs_mnrl": cases["auto"]["seconds_per_step"] / cases["mnrl"]["seconds_per_step"],
        "batch": BATCH, "negatives": 3, "steps": STEPS, "max_seq_length": 256}
    benchmark.extra_info.update(results)
    record("train_peak_memory_cpu", results)
