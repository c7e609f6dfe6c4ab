"""Shared fixtures: a fresh store per test, a tiny random-weight sentence-transformers model, and
small corpora written on the fly. Tests that need ../shared/data are marked ``shared_data`` and skip
with a reason when it is absent (a fresh clone has none)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import SAMPLE_DOCS, make_tiny_model, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EMBEDOPS_ACTOR", "tester@ci")

@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS)


class StoreCli:
    """Runs ``embedops --store URI ...`` in-process."""

    def __init__(self, store_uri: str):
        from embedops.cli import app

        self.app = app
        self.store_uri = store_uri
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int | None = 0):
        result = self.runner.invoke(self.app, ["--store", self.store_uri, *map(str, args)])
        if expect is not None:
            assert result.exit_code == expect, (
                f"exit {result.exit_code}, expected {expect}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
                + (f"\n{result.exception!r}" if result.exception and not isinstance(result.exception, SystemExit) else "")
            )
        return result


@pytest.fixture
def cli(store_uri: str) -> StoreCli:
    return StoreCli(store_uri)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
