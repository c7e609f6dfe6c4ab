"""The load of ``bench/serve_peers.py``, run by locust (headless) in the peers' venv: closed-loop
clients (no wait between requests), each sending one kind of request, until the run time ends or
``$SERVE_MAX_REQUESTS`` requests have been answered in all.

$SERVE_SCENARIO: ``embed1`` (one text per /v1/embeddings request), ``embed32`` (32 texts), or
``search1`` (one query per /v1/search request, embedops only). $SERVE_MODEL: the model name the
server answers /v1/embeddings for. $SERVE_TEXTS: a JSON file of texts to cycle through.
$SERVE_RESULT: where the run's figures are written (JSON).
"""

import itertools
import json
import os

from locust import FastHttpUser, events, task

SCENARIO = os.environ.get("SERVE_SCENARIO", "embed1")
MODEL = os.environ.get("SERVE_MODEL", "production")
MAX_REQUESTS = int(os.environ.get("SERVE_MAX_REQUESTS", "0"))
with open(os.environ["SERVE_TEXTS"], encoding="utf-8") as f:
    TEXTS = json.load(f)
_next = itertools.count()


def _texts(n: int) -> list[str]:
    start = next(_next) * n
    return [TEXTS[(start + i) % len(TEXTS)] for i in range(n)]


class Client(FastHttpUser):
    wait_time = staticmethod(lambda: 0)  # closed loop: the next request as soon as the answer came

    @task
    def one_request(self):
        if SCENARIO == "search1":
            self.client.post("/v1/search", json={"query": _texts(1)[0], "k": 10}, name="search1")
        else:
            n = 32 if SCENARIO == "embed32" else 1
            self.client.post("/v1/embeddings", json={"model": MODEL, "input": _texts(n)}, name=SCENARIO)
        if MAX_REQUESTS and self.environment.stats.total.num_requests >= MAX_REQUESTS:
            self.environment.runner.quit()


@events.quitting.add_listener
def _result(environment, **_):
    """The run's figures to $SERVE_RESULT (locust's own CSV comes out empty when a user ends the run)."""
    environment.process_exit_code = 0  # failures are counted, not turned into an exit code
    total = environment.stats.total
    out = {"requests": total.num_requests, "failures": total.num_failures,
           "requests_per_s": round(total.total_rps, 1),
           "p50_ms": total.get_response_time_percentile(0.5), "p95_ms": total.get_response_time_percentile(0.95),
           "p99_ms": total.get_response_time_percentile(0.99)} if total.num_requests else {"requests": 0}
    with open(os.environ["SERVE_RESULT"], "w", encoding="utf-8") as f:
        json.dump(out, f)
