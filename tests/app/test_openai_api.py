"""The stock OpenAI Python client against `embedops serve` on loopback, with its default arguments
(it asks for base64 vectors), and every request counted by status in Prometheus."""

import numpy as np
import openai
import pytest
from openai import OpenAI

from embedops.registry import open_encoder
from test_server import served  # noqa: F401  (the fixture: a real server on loopback)


@pytest.fixture
def oa(served):  # noqa: F811
    reg, client, blue, green = served
    return OpenAI(base_url=f"{client.base_url}/v1", api_key="not-checked", max_retries=0)


def test_the_stock_client_embeds_with_its_defaults_and_lists_models(served, oa):  # noqa: F811
    reg, client, blue, green = served
    texts = ["hello world", "kafka consumer lag on the orders topic"]
    got = oa.embeddings.create(model="production", input=texts)  # encoding_format base64 by default
    encoder = open_encoder(reg, "tiny@1")
    assert got.model == "tiny@1" and np.allclose([d.embedding for d in got.data], encoder.encode(texts), atol=1e-5)
    tokens = sum(len(e.ids) for e in encoder.tokenizer.encode_batch(texts))
    assert got.usage.prompt_tokens == got.usage.total_tokens == tokens > sum(len(t.split()) for t in texts)
    floats = oa.embeddings.create(model="tiny@2", input="hello world", encoding_format="float")
    assert floats.model == "tiny@2" and len(floats.data[0].embedding) == encoder.dim
    same = oa.embeddings.create(model="production", input="hello world", dimensions=encoder.dim)  # its own size
    assert len(same.data[0].embedding) == encoder.dim
    listed = [m.id for m in oa.models.list()]
    assert listed[0] == "production" and {"tiny@1", "tiny@2"} <= set(listed)
    assert oa.models.retrieve("tiny@2").owned_by == "embedops:model"


def test_errors_come_in_openais_shape_and_say_why(served, oa):  # noqa: F811
    reg, client, blue, green = served
    with pytest.raises(openai.BadRequestError) as shorter:
        oa.embeddings.create(model="production", input="x", dimensions=8)
    assert "not trained with Matryoshka" in shorter.value.message and shorter.value.param == "dimensions"
    with pytest.raises(openai.NotFoundError) as unknown:
        oa.embeddings.create(model="nope@3", input="x")
    assert "nope" in unknown.value.message and unknown.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        oa.embeddings.create(model="production", input=[[101, 2023, 102]])  # what LangChain sends by default
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("staging")
    r = client.post("/v1/embeddings", json={"input": ["x"] * 257})
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"
    big = client.post("/v1/embeddings", content=b"{" + b" " * (5 << 20) + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413 and "--max-body-bytes" in big.json()["error"]["message"]
    assert client.get("/ui/nowhere").status_code == 404 and "detail" in client.get("/ui/nowhere").json()  # not /v1
    bad = client.post("/v1/embeddings", json={"input": "x", "encoding_format": "int8"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "encoding_format"
    metrics = client.get("/metrics").text
    for status in ("400", "404", "413", "422"):  # refusals are counted, not only answers
        assert f'embedops_requests_total{{endpoint="embeddings",status="{status}"}}' in metrics, status
    assert 'embedops_requests_total{endpoint="models",status="404"}' in metrics


def test_a_matryoshka_model_gives_shorter_renormalised_vectors(served, oa, tmp_path):  # noqa: F811
    from helpers import make_tiny_model

    reg, client, blue, green = served
    weights = make_tiny_model(tmp_path / "tiny-m", seed=2)  # weights of its own: an export of its own
    ref = reg.models.register("tiny", weights, parent="tiny@2", params={"matryoshka_dims": [32, 16]}).ref
    full = open_encoder(reg, ref).encode(["kafka lag"])[0]  # exports it, as `model export-onnx` would
    short = np.asarray(oa.embeddings.create(model=ref, input="kafka lag", dimensions=16).data[0].embedding)
    assert short.shape == (16,) and np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    assert np.allclose(short, full[:16] / np.linalg.norm(full[:16]), atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="trained for 16, 32"):
        oa.embeddings.create(model=ref, input="x", dimensions=8)
