"""Benchmarks (pytest-benchmark). Not part of the test suite: run them with

    HF_HUB_OFFLINE=1 .venv/bin/python -m pytest bench -s --benchmark-json bench-results.json

Data comes from ../shared/data (or $EMBEDOPS_SHARED_DATA); benchmarks skip when it is absent.
Every speed figure is a ratio against a baseline measured in the same run on the same machine.
"""

import json
import os
import platform
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(os.environ.get("EMBEDOPS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def scifact() -> Path:
    path = SHARED / "scifact"
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"needs BEIR SciFact at {path}")
    return path


def machine() -> dict:
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers

    from embedops.cpu import cpu_features

    return {"cpu": cpu_features().describe(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__}


def record(name: str, data: dict) -> None:
    """Print a result block and append it to bench/results.jsonl (for docs/BENCHMARKS.md)."""
    line = json.dumps({"bench": name, **data, "machine": machine()}, sort_keys=True)
    print("\nBENCH", line)
    with open(Path(__file__).with_name("results.jsonl"), "a") as fh:
        fh.write(line + "\n")
