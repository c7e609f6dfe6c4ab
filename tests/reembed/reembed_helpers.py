"""Corpus generator for re-embedding tests."""

import random

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
