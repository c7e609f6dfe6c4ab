"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis over Hypothesis, bounded examples,
valid and invalid requests, a real server on loopback): no request gets a 5xx, and none changes the
store."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import running_app
from helpers import tree_snapshot
from embedops.app.server import RollbackPolicy, ServeSettings, create_app

pytestmark = pytest.mark.slow

EXAMPLES = 40  # per operation: about 200 requests, a few seconds on loopback


def test_the_api_fuzzed_from_its_schema_answers_no_5xx_and_writes_nothing(live_store):
    s = live_store
    settings_ = ServeSettings(check_interval=0.2, compact_interval=0, rollback=RollbackPolicy(enabled=False))
    before = tree_snapshot(s.reg.store.root)
    calls, statuses = [], {}
    with running_app(create_app(s.reg, settings_)) as client:
        base = str(client.base_url).rstrip("/")
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        operations = [op.ok() for op in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v1/search", "/v1/embeddings", "/healthz", "/readyz", "/metrics"}
        negative = schemathesis.GenerationMode.NEGATIVE  # a GET without parameters has nothing to break
        for operation, mode in [(op, m) for op in operations for m in schemathesis.GenerationMode
                                if m != negative or op.method.upper() == "POST"]:

            @given(case=operation.as_strategy(mode))  # valid requests, then invalid ones
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case):
                response = case.call(base_url=base, timeout=30)
                calls.append(operation.path)
                statuses.setdefault(operation.path, set()).add(response.status_code)
                assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text[:300])

            fuzz()
    assert len(calls) >= 2 * EXAMPLES  # it did fuzz: the generated requests were sent
    assert 200 in statuses["/v1/search"] and statuses["/v1/search"] - {200} <= {400, 404, 405, 409, 413, 422}
    assert statuses["/v1/embeddings"] - {200} <= {400, 404, 405, 409, 413, 422}
    assert tree_snapshot(s.reg.store.root) == before
