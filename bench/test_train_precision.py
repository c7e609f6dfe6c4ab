"""Training step time, fp32 vs bf16 autocast, on this machine's CPU, side by side in one run.

The step is the one bench/quality.py runs: the sentence-transformers trainer, MultipleNegativesRankingLoss,
batch 32, three hard negatives per pair, SciFact abstracts as positives and negatives (truncated at the
model's 256 tokens), all-MiniLM-L6-v2. bf16 pays off on CPUs with AVX512-BF16 or AMX (AMD Zen 4,
Intel Sapphire Rapids); elsewhere it can be slower than fp32, which is why ``mixed_precision="auto"``
keeps fp32 on a CPU.
"""

import time

from conftest import record
from embedops.corpus import doc_text, read_documents
from embedops.registry import Registry
from embedops.store import Store
from embedops.trainer.pairs import TrainingPair
from embedops.trainer.train import TrainConfig, train

STEPS = 3
BATCH = 32


def test_bf16_vs_fp32_training_step(benchmark, scifact, tmp_path):
    reg = Registry(Store.open(str(tmp_path / "store")))
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    docs = read_documents(scifact)[: 4 * STEPS * BATCH]
    texts = [doc_text(d.title, d.text) for d in docs]
    n = STEPS * BATCH
    pairs = [TrainingPair(f"{docs[i].title[:60]} evidence", texts[i], docs[i].id,
                          [texts[n + i], texts[2 * n + i], texts[3 * n + i]]) for i in range(n)]
    seconds = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(epochs=1, batch_size=BATCH, eval_fraction=0.0, max_steps=STEPS,
                             mixed_precision=precision)
        t = time.perf_counter()
        if precision == "bf16":
            result = benchmark.pedantic(lambda: train(reg, "minilm@1", pairs, config=config), rounds=1, iterations=1)
        else:
            result = train(reg, "minilm@1", pairs, config=config)
        seconds[precision] = (time.perf_counter() - t) / STEPS
        assert result.model.params["mixed_precision"] == precision
    results = {"seconds_per_step_fp32": seconds["fp32"], "seconds_per_step_bf16": seconds["bf16"],
               "bf16_speedup": seconds["fp32"] / seconds["bf16"], "batch": BATCH, "negatives": 3, "steps": STEPS}
    benchmark.extra_info.update(results)
    record("train_step_precision_cpu", results)
