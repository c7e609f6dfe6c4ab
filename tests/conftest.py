"""Shared fixtures: a fresh store per test, a tiny random-weight sentence-transformers model, and
small corpora written on the fly. Tests that need ../shared/data are marked ``shared_data`` and skip
with a reason when it is absent (a fresh clone has none)."""

from __future__ import annotations

import os
import uuid
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


@pytest.fixture
def reg(tmp_path, tiny_model_dir):
    """A fresh store's registry with the tiny model registered as tiny@1."""
    from embedops.registry import Registry
    from embedops.store import Store

    registry = Registry(Store.open(str(tmp_path / "store")))
    registry.models.register("tiny", tiny_model_dir)
    return registry


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory) -> Path:
    """A second tiny model, other random weights: a different model version of the same shape."""
    return make_tiny_model(tmp_path_factory.mktemp("models-b") / "tiny-b", seed=1)


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_uri(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket on the loopback server, configured the way users do: AWS_* variables only."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("EMBEDOPS_CACHE_DIR", str(tmp_path / "cache"))
    bucket = f"embedops-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/team/store"


@pytest.fixture(autouse=True)
def small_definitions_rail(request, tmp_path_factory, monkeypatch):
    """The trainer's default retrieval rail, bundled:general-definitions, is 965 words over 2,930
    definitions, scored before training and at every alpha: in the suite, with tiny models that
    learn nothing general, it would only add minutes. Tests get its first 60 words and 60 unrelated
    definitions under the same name, unless marked ``full_definitions_rail``."""
    if request.node.get_closest_marker("full_definitions_rail"):
        return
    import json
    from importlib import resources

    import embedops.data

    small = tmp_path_factory.getbasetemp() / "general-definitions-small.json"
    if not small.is_file():
        spec = json.loads((resources.files("embedops.data") / "general-definitions.json").read_text(encoding="utf-8"))
        small.write_text(json.dumps(spec | {"items": spec["items"][:60], "unrelated": spec["unrelated"][:60]}),
                         encoding="utf-8")
    monkeypatch.setitem(embedops.data.BUNDLED, "general-definitions", str(small))

