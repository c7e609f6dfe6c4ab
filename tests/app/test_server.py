"""`embedops serve` on loopback: a real uvicorn server over a store with a tiny model, following
promotions and rollbacks under concurrent requests, with clear HTTP errors."""

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import running_app
from embedops.app.server import ServeSettings, create_app
from embedops.errors import UsageError
from embedops.reembed import IndexBuild
from embedops.registry import open_encoder


@pytest.fixture
def served(reg, tiny_model_b, corpus_file):
    """A store with two ready indexes (tiny@1 in production, tiny@2 waiting) and a server on it."""
    reg.corpora.add("ops", corpus_file)
    blue = IndexBuild(reg, "tiny@1", "ops").run().index
    reg.promote(blue.index_id, override=True, reason="first index")
    reg.models.register("tiny", tiny_model_b, parent="tiny@1")
    green = IndexBuild(reg, "tiny@2", "ops").run().index
    with running_app(create_app(reg, check_interval=0.2)) as client:
        yield reg, client, blue, green


def _metric(text: str, name: str) -> float:
    """The sum of the samples called ``name`` in a /metrics page (prometheus-client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name)


def test_concurrent_searches_are_encoded_together_and_each_gets_its_own_answer(reg, corpus_file):
    from embedops.app.server.batching import BatchSettings

    reg.corpora.add("ops", corpus_file)
    blue = IndexBuild(reg, "tiny@1", "ops").run().index
    reg.promote(blue.index_id, override=True, reason="first index")
    queries = [f"incident {i}: postgres failover and kafka lag" for i in range(24)]
    # a batch that is not full waits 50 ms for more, so concurrent requests share model calls
    settings = ServeSettings(batching=BatchSettings(max_wait_ms=50))
    with running_app(create_app(reg, settings)) as client:
        alone = {q: client.post("/v1/search", json={"query": q, "k": 3}).json()["results"] for q in queries[:4]}
        before = client.get("/metrics").text
        with ThreadPoolExecutor(len(queries)) as pool:
            answers = list(pool.map(lambda q: client.post("/v1/search", json={"query": q, "k": 3}), queries))
        after = client.get("/metrics").text
    assert all(r.status_code == 200 for r in answers)
    for q, r in zip(queries, answers):
        body = r.json()
        assert body["index_id"] == blue.index_id and body["results"][0]["query"] == q  # its own answer
        if q in alone:  # and the same hits as when it came alone
            assert [h["id"] for h in body["results"][0]["hits"]] == [h["id"] for h in alone[q][0]["hits"]]
    calls = _metric(after, "embedops_batch_requests_count") - _metric(before, "embedops_batch_requests_count")
    requests = _metric(after, "embedops_batch_requests_sum") - _metric(before, "embedops_batch_requests_sum")
    assert requests == len(queries) and calls < len(queries)  # every request encoded once, fewer model calls


def test_search_answers_from_the_alias_and_follows_promotion_and_rollback(served):
    reg, client, blue, green = served
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["index_id"] == blue.index_id and ready["model_ref"] == "tiny@1"
    assert ready["writes"] == {"ready": True, "reason": None} and "canary" not in ready
    assert ready["provider"] == "OpenVINO:CPU"  # what embeds this fp32 index's queries, by default
    first = client.post("/v1/search", json={"query": "postgres failover", "k": 3}).json()
    assert first["index_id"] == blue.index_id and first["model_ref"] == "tiny@1"
    assert len(first["results"][0]["hits"]) == 3 and first["results"][0]["query"] == "postgres failover"
    assert all(h["title"] for h in first["results"][0]["hits"])  # each hit says what document it is

    answered_by: list[str] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            r = client.post("/v1/search", json={"queries": ["kafka lag", "cert renewal"], "k": 2})
            assert r.status_code == 200, r.text
            answered_by.append(r.json()["index_id"])  # one index per response, by construction and by check

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load) for _ in range(4)]
        time.sleep(0.5)
        reg.promote(green.index_id, override=True, reason="test: switch under load")
        switched = time.monotonic()
        while client.post("/v1/search", json={"query": "x", "k": 1}).json()["index_id"] != green.index_id:
            assert time.monotonic() - switched < 2.0, "the server did not follow the promotion within 2 s"
            time.sleep(0.05)
        reg.rollback(reason="test: roll back under load")
        rolled = time.monotonic()
        while client.post("/v1/search", json={"query": "x", "k": 1}).json()["index_id"] != blue.index_id:
            assert time.monotonic() - rolled < 2.0, "the server did not follow the rollback within 2 s"
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result()  # no request failed
    assert set(answered_by) <= {blue.index_id, green.index_id} and len(answered_by) > 10
    metrics = client.get("/metrics").text
    assert 'embedops_requests_total{endpoint="search",status="200"}' in metrics
    assert f'index="{green.index_id}"' in metrics and "embedops_request_seconds_bucket" in metrics
    assert f'embedops_alias_target{{alias="production",index="{blue.index_id}"}} 1.0' in metrics
    assert f'embedops_alias_target{{alias="production",index="{green.index_id}"}}' not in metrics  # moved away


def test_embeddings_are_openai_compatible_and_match_the_model(served):
    reg, client, blue, green = served
    body = client.post("/v1/embeddings", json={"input": ["hello world", "kafka lag"], "model": "production"}).json()
    assert body["object"] == "list" and body["model"] == "tiny@1" and [d["index"] for d in body["data"]] == [0, 1]
    got = np.asarray([d["embedding"] for d in body["data"]], dtype=np.float32)
    want = open_encoder(reg, "tiny@1").encode(["hello world", "kafka lag"])
    assert np.allclose(got, want, atol=1e-5)
    by_ref = client.post("/v1/embeddings", json={"input": "hello world", "model": "tiny@2"}).json()
    assert by_ref["model"] == "tiny@2" and len(by_ref["data"][0]["embedding"]) == got.shape[1]


def test_bad_requests_get_errors_naming_what_is_wrong(served):
    reg, client, blue, green = served
    missing = client.post("/v1/search", json={"query": "x", "alias": "nightly"})
    assert missing.status_code == 404 and "nightly" in missing.json()["error"]["message"]
    bad_k = client.post("/v1/search", json={"query": "x", "k": 0})
    assert bad_k.status_code == 422 and bad_k.json()["error"]["param"] == "k"
    neither = client.post("/v1/search", json={"k": 3})
    assert neither.status_code == 422 and "exactly one of 'query' and 'queries'" in neither.text
    unknown_model = client.post("/v1/embeddings", json={"input": "x", "model": "nope@3"})
    assert unknown_model.status_code == 404 and "nope" in unknown_model.json()["error"]["message"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/search", "/v1/embeddings", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert client.get("/healthz").json() == {"status": "ok"}


def test_embeddings_of_a_model_without_export_answer_409_and_write_nothing(served, tiny_model_b, tmp_path):
    reg, client, blue, green = served
    model = shutil.copytree(tiny_model_b, tmp_path / "tiny-c")
    (model / "README.md").write_text("tiny@2 with a model card: other files, so another digest")
    reg.models.register("tiny", model, parent="tiny@2")  # tiny@3: no index, so no export yet
    artifacts = reg.store.open_table("model_artifacts").count_rows()
    r = client.post("/v1/embeddings", json={"input": "x", "model": "tiny@3"})
    assert r.status_code == 409 and "embedops model export-onnx tiny@3" in r.json()["error"]["message"]
    assert reg.artifacts.find("tiny@3", "onnx-fp32") is None
    assert reg.store.open_table("model_artifacts").count_rows() == artifacts
    # the encoder cache was not held by an export: another model's request answers at once
    assert client.post("/v1/embeddings", json={"input": "x", "model": "tiny@2"}).status_code == 200


def test_oversized_requests_get_413_or_422_naming_the_limit(served):
    reg, client, blue, green = served
    r = client.post("/v1/embeddings", json={"input": ["x"] * 257})
    assert r.status_code == 413 and "257 texts in 'input'; the limit is 256" in r.json()["error"]["message"]
    r = client.post("/v1/search", json={"queries": ["x"] * 300, "k": 1})
    assert r.status_code == 413 and "--max-inputs" in r.json()["error"]["message"]
    r = client.post("/v1/search", json={"query": "x" * 9000})
    assert r.status_code == 413 and "9000 characters; the limit is 8192" in r.json()["error"]["message"]
    r = client.post("/v1/embeddings", json={"input": ["ok", "y" * 8193]})
    assert r.status_code == 413 and "text 1 has 8193 characters" in r.json()["error"]["message"]
    r = client.post("/v1/embeddings", json={"input": []})
    assert r.status_code == 422 and "at least one text" in r.text
    big = b'{"input": "' + b"z" * (4 * 1024 * 1024) + b'"}'
    r = client.post("/v1/embeddings", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]["message"]
    chunked = client.post("/v1/embeddings", content=iter([big[:1024]] + [big[1024:]]),
                          headers={"content-type": "application/json"})  # no Content-Length: counted as it comes
    assert chunked.status_code == 413
    assert client.post("/v1/search", json={"query": "x", "k": 1}).status_code == 200  # still serving


def test_when_the_store_cannot_be_read_the_open_index_keeps_serving(served, monkeypatch):
    reg, client, blue, green = served
    assert client.post("/v1/search", json={"query": "x", "k": 1}).json()["index_id"] == blue.index_id

    def unreachable(name):
        raise OSError("store unreachable (test)")

    monkeypatch.setattr(reg.aliases, "get", unreachable)
    time.sleep(0.3)  # past the check interval: the next request reads the alias and fails to
    answered = client.post("/v1/search", json={"query": "x", "k": 1})
    assert answered.status_code == 200 and answered.json()["index_id"] == blue.index_id
    ready = client.get("/readyz").json()
    assert ready["ready"] and "store unreachable" in ready["store_error"]


def test_serve_settings_refuse_an_unknown_runtime_or_shadow_fraction():
    with pytest.raises(UsageError, match="unknown runtime 'tensorrt'; choose one of auto, onnxruntime, openvino"):
        ServeSettings(runtime="tensorrt")
    with pytest.raises(UsageError, match="--shadow-fraction must be between 0 and 1"):
        ServeSettings(shadow_fraction=1.5)
    assert ServeSettings().runtime == "auto"  # OpenVINO for fp32 and bf16 on the CPU


def test_a_bridge_behind_the_alias_answers_under_load_through_promote_rollback_promote(reg, tiny_model_b, tmp_path):
    from embedops.app.bridges import fit_bridge_adapter, open_bridge
    from helpers import write_jsonl

    topics = ["kafka consumer lag", "postgres failover", "tls renewal", "disk pressure", "redis eviction", "dns expiry"]
    docs = [{"_id": f"d{i}", "title": topics[i % 6], "text": f"note {i} on {topics[i % 6]} and {topics[i * 5 % 6]}"}
            for i in range(90)]
    reg.corpora.add("ops", write_jsonl(tmp_path / "notes.jsonl", docs))
    old = IndexBuild(reg, "tiny@1", "ops").run().index
    reg.promote(old.index_id, override=True, reason="first index")
    reg.models.register("tiny", tiny_model_b, parent="tiny@1")
    bridge = fit_bridge_adapter(reg, "tiny@2", old.index_id, kind="procrustes", sample=90).adapter_id
    full = IndexBuild(reg, "tiny@2", "ops").run().index
    bodies: list[dict] = []
    embedded: dict = {}
    stop = threading.Event()

    def until(client, index_id: str) -> None:
        start = time.monotonic()
        while client.post("/v1/search", json={"query": "x", "k": 1}).json()["index_id"] != index_id:
            assert time.monotonic() - start < 2.0, f"the server did not switch to {index_id} within 2 s"
            time.sleep(0.05)

    with running_app(create_app(reg, check_interval=0.2)) as client:
        def load():
            while not stop.is_set():
                r = client.post("/v1/search", json={"queries": ["kafka lag", "tls renewal"], "k": 3})
                assert r.status_code == 200, r.text
                bodies.append(r.json())

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(load) for _ in range(4)]
            for step, target in [("promote", bridge), ("rollback", old.index_id), ("promote", bridge),
                                 ("promote", full.index_id)]:
                time.sleep(0.3)
                if step == "promote":
                    reg.promote(target, override=True, reason=f"test: {target} under load")
                else:
                    reg.rollback(reason="test: roll the bridge back under load")
                until(client, target)
                if target == bridge and not embedded:  # OpenAI embeddings of the alias: the bridge's vectors
                    embedded.update(client.post("/v1/embeddings", json={"input": ["kafka lag"],
                                                                        "model": "production"}).json())
                    ready = client.get("/readyz").json()
                    assert ready["index_id"] == bridge and ready["bridge"]["index_id"] == old.index_id
                    assert ready["provider"].endswith("procrustes adapter")
            time.sleep(0.3)
            stop.set()
            for f in futures:
                f.result()  # no request failed
    seen = {b["index_id"] for b in bodies}
    assert seen == {old.index_id, bridge, full.index_id}
    for b in bodies:  # a bridge's answers say so; an index's do not
        if b["index_id"] == bridge:
            assert b["model_ref"] == "tiny@2" and b["bridge"] == {"adapter_id": bridge, "index_id": old.index_id,
                                                                   "index_model_ref": "tiny@1", "kind": "procrustes",
                                                                   "new_index": None, "new_share": None}
        else:
            assert b["bridge"] is None
    mapped = open_bridge(reg, bridge).encode(["kafka lag"])  # tiny@2's query, mapped into tiny@1's space
    assert embedded["model"] == "tiny@2" and np.allclose(embedded["data"][0]["embedding"], mapped[0], atol=1e-5)


def test_a_binary_index_serves_a_canary_then_promotes_and_rolls_back_under_load(served):
    """Sign bits rescored with int8 codes behind the alias (issue #36): a canary share, a promotion
    and a rollback under load, each response wholly from one index and equal to what that index
    answers in-process."""
    from embedops.index import IndexSettings
    from embedops.registry import Searcher

    reg, client, blue, _ = served
    small = IndexBuild(reg, "tiny@2", "ops", settings=IndexSettings(vectors="binary")).run().index
    queries = ["kafka lag", "cert renewal"]
    expected = {i: [[h.id for h in hits] for hits in Searcher(reg).open(i).search(queries, 3)]
                for i in (blue.index_id, small.index_id)}
    bodies: list[dict] = []
    stop = threading.Event()

    def until(check, what: str) -> None:
        start = time.monotonic()
        while not check():
            assert time.monotonic() - start < 3.0, f"the server did not see {what} within 3 s"
            time.sleep(0.05)

    def load(n: int):
        while not stop.is_set():
            r = client.post("/v1/search", json={"queries": queries, "k": 3, "client": f"c{n}-{len(bodies)}"})
            assert r.status_code == 200, r.text
            bodies.append(r.json())

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load, n) for n in range(4)]
        reg.start_canary(small.index_id, percent=50, override=True, reason="test: a binary canary")
        until(lambda: client.get("/readyz").json().get("canary"), "the canary")
        time.sleep(0.5)
        reg.promote_canary(override=True, reason="test: promote the binary canary")
        until(lambda: client.get("/readyz").json()["index_id"] == small.index_id and
              "canary" not in client.get("/readyz").json(), "the promotion")
        time.sleep(0.3)
        reg.rollback(reason="test: back to float32")
        until(lambda: client.get("/readyz").json()["index_id"] == blue.index_id, "the rollback")
        time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result()  # no request failed
    routes = {(b["route"], b["index_id"]) for b in bodies}
    assert ("canary", small.index_id) in routes and ("stable", small.index_id) in routes
    assert ("stable", blue.index_id) in routes
    for b in bodies:
        assert [[h["id"] for h in r["hits"]] for r in b["results"]] == expected[b["index_id"]]
