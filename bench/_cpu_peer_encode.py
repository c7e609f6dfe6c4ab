"""One timed peer encode for bench/cpu_peers.py, run in a peers' venv in a fresh process (it imports
nothing of embedops): load the model as a user of that library would, embed every text of
``--texts`` (JSON list) with the library's defaults, save the embeddings (float32 .npy, input order)
and print one JSON line: seconds to load, seconds to encode, and what ran.

    .bench-venv/cpu-peers/bin/python bench/_cpu_peer_encode.py --path st_openvino \\
        --model WORK/st-model --texts WORK/texts.json --out WORK/st_openvino.npy

``--prepare`` instead writes what a path loads (sentence-transformers' ONNX, int8 and OpenVINO files
into the model directory, fastembed's directory), untimed, as a user would do once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

FASTEMBED_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # fastembed's own entry for this model
FASTEMBED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json", "vocab.txt")


def _int8_target() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"


def prepare(path: str, model: Path, fastembed_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    if path in ("st_onnx", "st_onnx_int8", "fastembed"):
        if not (model / "onnx" / "model.onnx").exists():
            SentenceTransformer(str(model), device="cpu", backend="onnx").save_pretrained(str(model))
        if path == "st_onnx_int8":
            from sentence_transformers import export_dynamic_quantized_onnx_model

            st = SentenceTransformer(str(model), device="cpu", backend="onnx")
            export_dynamic_quantized_onnx_model(st, _int8_target(), str(model))
        if path == "fastembed":
            fastembed_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(model / "onnx" / "model.onnx", fastembed_dir / "model.onnx")
            for name in FASTEMBED_FILES:
                if (model / name).exists():
                    shutil.copy(model / name, fastembed_dir / name)
            # fastembed truncates at the tokenizer config's limit (min of model_max_length and max_length):
            # 256 tokens, as sentence-transformers and embedops do for this model, and as fastembed's own
            # entry for it says ("256 input tokens truncation"); the files as saved say 128 or 512.
            config_path = fastembed_dir / "tokenizer_config.json"
            config = json.loads(config_path.read_text("utf-8"))
            config.update(model_max_length=256, max_length=256)
            config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    elif path.startswith("st_openvino"):
        if not (model / "openvino" / "openvino_model.xml").exists():
            SentenceTransformer(str(model), device="cpu", backend="openvino").save_pretrained(str(model))


def load(path: str, model: Path, fastembed_dir: Path):
    """A function texts -> embeddings, as the library's user would write it."""
    if path == "fastembed":
        from fastembed import TextEmbedding

        fe = TextEmbedding(FASTEMBED_NAME, specific_model_path=str(fastembed_dir))
        return lambda texts: list(fe.embed(texts)), f"fastembed (ONNX Runtime {_version('onnxruntime')})"
    from sentence_transformers import SentenceTransformer

    kwargs: dict = {}
    if path == "st_torch":
        kwargs = {}
    elif path == "st_onnx":
        kwargs = {"backend": "onnx", "model_kwargs": {"provider": "CPUExecutionProvider"}}
    elif path == "st_onnx_int8":
        kwargs = {"backend": "onnx", "model_kwargs": {"provider": "CPUExecutionProvider",
                                                      "file_name": f"onnx/model_qint8_{_int8_target()}.onnx"}}
    elif path == "st_openvino":  # the backend's defaults, whatever precision optimum-intel and OpenVINO pick
        kwargs = {"backend": "openvino"}
    elif path == "st_openvino_f32":
        kwargs = {"backend": "openvino", "model_kwargs": {"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}}}
    elif path == "st_openvino_bf16":  # asked for by name, as a user after speed on an AMX CPU would
        kwargs = {"backend": "openvino", "model_kwargs": {"ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}}}
    else:
        raise SystemExit(f"unknown path {path!r}")
    st = SentenceTransformer(str(model), device="cpu", **kwargs)
    what = f"sentence-transformers {_version('sentence_transformers')} {kwargs.get('backend', 'torch')}"
    return lambda texts: st.encode(texts, normalize_embeddings=True, convert_to_numpy=True), what


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - a version is only a label here
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--fastembed-dir", type=Path)
    ap.add_argument("--texts", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--prepare", action="store_true")
    args = ap.parse_args()
    fastembed_dir = args.fastembed_dir or args.model.parent / "fastembed-model"
    if args.prepare:
        prepare(args.path, args.model, fastembed_dir)
        return
    import numpy as np

    texts = json.loads(args.texts.read_text("utf-8"))
    t0 = time.perf_counter()
    encode, what = load(args.path, args.model, fastembed_dir)
    t1 = time.perf_counter()
    emb = np.asarray(encode(texts), dtype=np.float32)
    t2 = time.perf_counter()
    np.save(args.out, emb)
    print(json.dumps({"load_s": t1 - t0, "encode_s": t2 - t1, "docs": len(texts), "what": what,
                      "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
