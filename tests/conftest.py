"""Shared fixtures: a fresh store per test, a tiny random-weight sentence-transformers model, and
small corpora written on the fly. Tests that need ../shared/data are marked ``shared_data`` and skip
with a reason when it is absent (a fresh clone has none)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import SAMPLE_DOCS, StoreCli, make_tiny_model, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EMBEDOPS_ACTOR", "tester@ci")

@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS)


@pytest.fixture
def cli(store_uri: str) -> StoreCli:
    return StoreCli(store_uri)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
