"""The old exporter (optimum-onnx's ``main_export``) against the one embedops uses now
(``torch.onnx.export``), side by side in one process on one machine (issue #19).

Both graphs get embedops' pooling and normalisation appended and run through the same
``OnnxEncoder`` (ONNX Runtime and OpenVINO's runtime, fp32; ONNX Runtime int8). It needs
optimum-onnx, which embedops no longer depends on and which needs transformers < 4.58, so run it from
an environment of the old stack (sentence-transformers 5.x, transformers 4.57, ``pip install
optimum-onnx``):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/exporter_side_by_side.py [--docs 1000] [--rounds 3]

For each variant: docs/s over the first ``--docs`` SciFact abstracts (rounds alternate between the
exporters, so host noise falls on both), the max |difference| of the embeddings and the minimum
cosine between the two exporters' vectors. Prints JSON and appends it to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]  # bench's conftest (record), tests' helpers


def _optimum_transformer(model_dir: Path, out_path: Path) -> None:
    """What embedops' export_transformer did up to 2026-12-01."""
    from optimum.exporters.onnx import main_export

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        main_export(str(model_dir), output=tmp, task="feature-extraction", opset=18, device="cpu",
                    do_validation=False, library_name="transformers", local_files_only=True)
        shutil.move(str(Path(tmp) / "model.onnx"), out_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from conftest import record
    from embedops.corpus import doc_text, read_documents
    from embedops.encoding import OnnxEncoder
    from embedops.encoding import export
    from helpers import bundled_model_path

    texts = [doc_text(d.title, d.text) for d in read_documents(DATA / "scifact")[: args.docs]]
    model_dir = bundled_model_path()
    work = Path(tempfile.mkdtemp())
    torch_export = export.export_transformer
    dirs = {}
    for exporter, fn in (("torch", torch_export), ("optimum", _optimum_transformer)):
        export.export_transformer = fn  # export_onnx calls it through the module
        for precision in ("fp32", "int8"):
            dirs[(exporter, precision)] = work / f"{exporter}-{precision}"
            export.export_onnx(model_dir, dirs[(exporter, precision)], precision)
    export.export_transformer = torch_export

    variants = [("fp32", "onnxruntime"), ("fp32", "openvino"), ("int8", "onnxruntime")]
    rates: dict[str, list[float]] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for precision, runtime in variants:
            for exporter in ("optimum", "torch"):
                key = f"{exporter}_{precision}_{runtime}"
                enc = OnnxEncoder(dirs[(exporter, precision)], device="cpu", runtime=runtime)
                enc.encode(texts[:64])
                t = time.perf_counter()
                vectors[key] = np.asarray(enc.encode(texts), dtype=np.float32)
                rates.setdefault(key, []).append(len(texts) / (time.perf_counter() - t))
                print(f"  {key}: {rates[key][-1]:.1f} docs/s", flush=True)
    result = {"docs": len(texts), "rounds": args.rounds, "docs_per_s": rates, "torch_over_optimum": {}}
    for precision, runtime in variants:
        a, b = vectors[f"optimum_{precision}_{runtime}"], vectors[f"torch_{precision}_{runtime}"]
        ratio = [t / o for t, o in zip(rates[f"torch_{precision}_{runtime}"], rates[f"optimum_{precision}_{runtime}"])]
        result["torch_over_optimum"][f"{precision}_{runtime}"] = {
            "rate_ratio_per_round": ratio, "rate_ratio_median": float(np.median(ratio)),
            "max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float((a * b).sum(axis=1).min())}
    record("exporter_side_by_side", result)


if __name__ == "__main__":
    main()
