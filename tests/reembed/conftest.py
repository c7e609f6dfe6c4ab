import random

import pytest

from helpers import make_tiny_model, write_jsonl
from embedops.registry import Registry
from embedops.store import Store

TOPICS = ["postgres failover", "kafka lag", "tls certificate", "disk pressure", "redis memory",
          "deploy rollback", "latency alert", "vault credentials", "dns resolution", "cdn purge"]


def make_docs(n: int, seed: int = 0, prefix: str = "doc") -> list[dict]:
    rng = random.Random(seed)
    words = "node broker replica cache shard ingress pod cluster queue topic lease token index".split()
    docs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))
        docs.append({"_id": f"{prefix}-{i:04d}", "title": topic.title(), "text": f"{topic}: {body}"})
    return docs


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("models-b") / "tiny-b", seed=1)


@pytest.fixture
def reg(tmp_path, tiny_model_dir):
    registry = Registry(Store.open(str(tmp_path / "store")))
    registry.models.register("tiny", tiny_model_dir)
    return registry


@pytest.fixture
def docs_file(tmp_path):
    return write_jsonl(tmp_path / "docs.jsonl", make_docs(40))
