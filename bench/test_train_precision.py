"""Training step time, fp32 vs bf16 autocast, and bf16 at a 128-token training limit, on this
machine's CPU, side by side in one run.

The step is the one bench/quality.py runs: the sentence-transformers trainer, MultipleNegativesRankingLoss,
batch 32, three hard negatives per pair, SciFact abstracts as positives and negatives (truncated at the
model's 256 tokens), all-MiniLM-L6-v2. bf16 pays off on CPUs with AVX512-BF16 or AMX (AMD Zen 4,
Intel Sapphire Rapids); elsewhere it can be slower than fp32, which is why ``mixed_precision="auto"``
keeps fp32 on a CPU. ``max_seq_length=128`` (``--max-seq-length``) trains on each text's first 128
tokens; SciFact abstracts mostly exceed that, so a step shrinks with it.
"""

import time

from _pairs import step_pairs
from conftest import record
from embedops.registry import Registry
from embedops.store import Store
from embedops.trainer.train import TrainConfig, train

STEPS = 3
BATCH = 32


def test_bf16_vs_fp32_training_step(benchmark, scifact, tmp_path):
    reg = Registry(Store.open(str(tmp_path / "store")))
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    pairs = step_pairs(scifact, STEPS, BATCH)
    seconds = {}
    for case, precision, limit in (("fp32", "fp32", None), ("bf16", "bf16", None), ("bf16_128", "bf16", 128)):
        config = TrainConfig(epochs=1, batch_size=BATCH, eval_fraction=0.0, max_steps=STEPS, interpolate=None,
                             mixed_precision=precision, max_seq_length=limit)
        t = time.perf_counter()
        if case == "bf16":
            result = benchmark.pedantic(lambda: train(reg, "minilm@1", pairs, config=config), rounds=1, iterations=1)
        else:
            result = train(reg, "minilm@1", pairs, config=config)
        seconds[case] = (time.perf_counter() - t) / STEPS  # includes loading and registering: a whole train()
        assert result.model.params["mixed_precision"] == precision and result.model.params["max_seq_length"] == limit
    results = {f"seconds_per_step_{c}": s for c, s in seconds.items()} | {
        "bf16_speedup": seconds["fp32"] / seconds["bf16"], "bf16_128_tokens_speedup_vs_bf16": seconds["bf16"] / seconds["bf16_128"],
        "batch": BATCH, "negatives": 3, "steps": STEPS}
    benchmark.extra_info.update(results)
    record("train_step_precision_cpu", results)
