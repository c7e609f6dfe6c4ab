"""OpenAI's embeddings API over embedops' aliases and model versions: what the stock ``openai``
client sends and expects with its default arguments (and so LangChain's, LlamaIndex's and ``llm``'s
OpenAI embedding classes, which sit on it).

* ``POST /v1/embeddings``: ``input`` a text or a list of texts; ``model`` an alias (its stable
  index's model) or a model ref ``NAME@N``; ``encoding_format`` ``float`` or ``base64`` (the bytes of
  little-endian float32 vectors, which the SDK asks for by default and decodes with numpy);
  ``dimensions`` honoured for a model trained with Matryoshka dimensions (its registry params'
  ``matryoshka_dims``: the vector is truncated and renormalised), refused with a 400 that says why
  for any other size than the model's own; ``usage`` counts the model's tokenizer's tokens (what the
  model saw, special tokens included, after truncation).
* ``GET /v1/models`` and ``GET /v1/models/{id}``: the aliases that point at an index, and the
  registered model versions.
* Errors on every ``/v1/*`` path come in OpenAI's shape, ``{"error": {"message", "type", "param",
  "code"}}`` (:func:`install_openai_errors`), with the same HTTP status as before.

>>> from openai import OpenAI                                                        # doctest: +SKIP
>>> client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")          # doctest: +SKIP
>>> client.embeddings.create(model="production", input=["kafka lag"]).data[0].embedding[:3]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from embedops.app.server.batching import Batchers
from embedops.app.server.errors import openai_error
from embedops.app.server.limits import RequestLimits, check_texts
from embedops.app.server.metrics import ServeMetrics
from embedops.errors import ExportMissingError, NotFoundError, UsageError
from embedops.registry import Registry, open_encoder

TOKEN_ARRAYS = ("token arrays (lists of integers) are ids of OpenAI's own tokenizer and mean nothing to this "
                "model; send the texts (LangChain: OpenAIEmbeddings(..., check_embedding_ctx_length=False))")


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``/v1/embeddings`` request."""

    input: str | list[str] | list[int] | list[list[int]] = Field(..., description="Text or texts to embed.")
    model: str = Field("production", description="An alias (its stable index's model) or a model ref NAME@N.")
    encoding_format: str = Field("float", pattern="^(float|base64)$",
                                 description="float, or base64: the bytes of little-endian float32 vectors.")
    dimensions: int | None = Field(None, ge=1, description="Vector size; only a model trained with Matryoshka "
                                   "dimensions can give fewer than its own.")
    user: str | None = Field(None, description="Accepted and ignored, as OpenAI's end-user id.")


@dataclass(frozen=True)
class EmbeddingTarget:
    """What embeds a request: the encoder, the model version it belongs to, and the index label its
    metrics go under ("-" for a model ref)."""

    encoder: Any
    model_ref: str
    index_label: str


def openai_router(registry: Registry, *, limits: RequestLimits, metrics: ServeMetrics,
                  alias_target: Callable[[str], Awaitable[EmbeddingTarget]], runtime: str,
                  guard: Callable[[], Any], batchers: Batchers) -> APIRouter:
    """The routes above. ``alias_target(alias)`` opens what an alias embeds with (raising the
    HTTPException the server answers for an unknown alias); ``guard()`` is the context a request runs
    in (the server's in-flight counter, which mirrored work waits for); ``batchers`` encode concurrent
    requests of one encoder together."""
    router = APIRouter()

    def model_target(model: str) -> EmbeddingTarget:
        try:  # never exports: a server writes nothing to the store
            encoder = open_encoder(registry, model, runtime=runtime, create=False)
            return EmbeddingTarget(encoder, registry.models.get(model).ref, "-")
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except ExportMissingError as exc:
            raise HTTPException(409, str(exc)) from None
        except UsageError as exc:
            raise HTTPException(422, [{"loc": ["body", "model"], "msg": str(exc), "type": "value_error"}]) from None

    @router.post("/v1/embeddings", summary="Embed texts (OpenAI-compatible)")
    async def embeddings(request: EmbeddingsRequest) -> dict:
        with guard():  # mirrored work waits for these too
            return await embed(request)

    async def embed(request: EmbeddingsRequest) -> dict:
        start = time.perf_counter()
        texts = [request.input] if isinstance(request.input, str) else request.input
        if any(not isinstance(t, str) for t in texts):
            raise HTTPException(400, [{"loc": ["body", "input"], "msg": TOKEN_ARRAYS, "type": "value_error"}])
        check_texts(texts, "input", limits)
        chosen = await (alias_target(request.model) if "@" not in request.model
                        else run_in_threadpool(model_target, request.model))
        vectors, tokens = await asyncio.gather(batchers.of(chosen.encoder).encode(list(texts)),
                                               run_in_threadpool(_token_count, chosen.encoder, texts))
        if request.dimensions is not None:  # may read the model's params from the store
            vectors = await run_in_threadpool(_resize, vectors, request.dimensions, registry, chosen.model_ref)
        metrics.latency.labels("embeddings", chosen.index_label).observe(time.perf_counter() - start)
        data = [{"object": "embedding", "index": i, "embedding": _encoded(v, request.encoding_format)}
                for i, v in enumerate(vectors)]
        return {"object": "list", "model": chosen.model_ref, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @router.get("/v1/models", summary="The aliases and model versions /v1/embeddings takes (OpenAI-compatible)")
    def models() -> dict:
        return {"object": "list", "data": _models(registry)}

    @router.get("/v1/models/{model_id}", summary="One alias or model version (OpenAI-compatible)")
    def model(model_id: str) -> dict:
        found = next((m for m in _models(registry) if m["id"] == model_id), None)
        if found is None:
            raise HTTPException(404, f"no alias or model version {model_id!r} (GET /v1/models lists them)")
        return found

    return router


def _resize(vectors: np.ndarray, dimensions: int | None, registry: Registry, model_ref: str) -> np.ndarray:
    """``vectors`` at ``dimensions``: as they are for the model's own size; truncated and renormalised
    for a size the model was trained for (Matryoshka); a 400 naming why otherwise."""
    own = vectors.shape[1]
    if dimensions is None or dimensions == own:
        return vectors
    trained = [int(d) for d in (registry.models.get(model_ref).params or {}).get("matryoshka_dims") or []]
    if dimensions not in trained:
        why = (f"it was trained for {', '.join(map(str, sorted(trained)))}" if trained else
               "it was not trained with Matryoshka dimensions, so a shorter vector would lose quality silently")
        raise HTTPException(400, [{"loc": ["body", "dimensions"], "type": "value_error",
                                   "msg": f"{model_ref} makes {own}-dimension vectors and cannot give {dimensions}: "
                                          f"{why}; leave dimensions out or ask for {own}"}])
    cut = vectors[:, :dimensions]
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)


def _encoded(vector: np.ndarray, encoding_format: str):
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.tolist()


def _token_count(encoder, texts: list[str]) -> int:
    """Tokens the model saw, by its own tokenizer (truncated as it encodes); words where an encoder
    keeps no tokenizer."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None:
        return sum(len(t.split()) for t in texts)
    return sum(len(e.ids) for e in tokenizer.encode_batch(list(texts)))


def _created(ts: str | None) -> int:
    try:
        return int(datetime.datetime.fromisoformat(ts).timestamp()) if ts else 0
    except ValueError:
        return 0


def _models(registry: Registry) -> list[dict]:
    """Aliases that point at an index, then model versions, as OpenAI model objects."""
    out = [{"id": a.name, "object": "model", "created": _created(a.ts), "owned_by": "embedops:alias"}
           for a in registry.aliases.list() if a.value]
    out += [{"id": m.ref, "object": "model", "created": _created(m.created_at), "owned_by": "embedops:model"}
            for m in registry.models.list()]
    return out


def _from_detail(detail) -> tuple[str, str | None]:
    """(message, param) from a FastAPI error detail: a string, or validation errors with a ``loc``."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(p) for p in first.get("loc", []) if p != "body"]
        messages = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []) if p != 'body')}: {e.get('msg')}"
                             for e in detail)
        return messages, (loc[0] if loc else None)
    return str(detail), None


def install_openai_errors(app: FastAPI) -> None:
    """Answer errors under ``/v1/`` in OpenAI's shape; everything else keeps FastAPI's."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if not request.url.path.startswith("/v1/"):
            return await http_exception_handler(request, exc)
        message, param = _from_detail(exc.detail)
        code = "model_not_found" if exc.status_code == 404 and param is None and "model" in message.lower() else None
        return JSONResponse(openai_error(exc.status_code, message, param, code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if not request.url.path.startswith("/v1/"):
            return await request_validation_exception_handler(request, exc)
        message, param = _from_detail(list(exc.errors()))
        return JSONResponse(openai_error(422, message, param, "invalid_value"), status_code=422)
