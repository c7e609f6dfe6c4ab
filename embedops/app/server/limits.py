"""What one request may ask of ``embedops serve``: the body size (an ASGI middleware that answers
413 before a larger body is read, with or without a Content-Length) and the number and length of
the texts a search or embedding request carries (:func:`check_texts`). Each refusal names the limit
and the ``embedops serve`` flag that sets it.

>>> RequestLimits().max_inputs, RequestLimits().max_chars, RequestLimits().max_body_bytes
(256, 8192, 4194304)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import HTTPException

from embedops.app.server.errors import openai_error
from embedops.errors import UsageError


@dataclass(frozen=True)
class RequestLimits:
    """``max_inputs``: texts in one request; ``max_chars``: characters in one text or query (the
    models read 256-512 tokens, about 2,000 characters: 8,192 leaves room without letting a request
    tie a worker up); ``max_body_bytes``: the whole request body."""

    max_inputs: int = 256
    max_chars: int = 8192
    max_body_bytes: int = 4 * 1024 * 1024

    def __post_init__(self):
        for name in ("max_inputs", "max_chars", "max_body_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer (got {value!r})")


def check_texts(texts: list[str], field: str, limits: RequestLimits) -> None:
    """422 for no text at all, 413 for too many or too long texts, naming the limit."""
    if not texts:
        raise HTTPException(422, [{"loc": ["body", field], "msg": f"'{field}' must name at least one text",
                                   "type": "value_error"}])
    if len(texts) > limits.max_inputs:
        raise HTTPException(413, f"{len(texts)} texts in '{field}'; the limit is {limits.max_inputs} a request "
                                 "(embedops serve --max-inputs)")
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            raise HTTPException(413, f"'{field}' text {i} has {len(text)} characters; the limit is {limits.max_chars} "
                                     "(embedops serve --max-chars)")


class BodyLimit:
    """ASGI middleware: a request whose body exceeds ``limit`` bytes gets 413 (checked from the
    Content-Length header before anything is read, and counted as a chunked body arrives: past the
    limit the 413 is sent at once, the app is told the client left, and what it sends is dropped)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send, scope.get("path", ""))
        seen, started, refused = 0, False, False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        await self._refuse(send, scope.get("path", ""))
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message):
            nonlocal started
            if refused:
                return  # the 413 went out already
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send, path: str):
        message = f"request body over {self.limit} bytes (embedops serve --max-body-bytes)"
        body = json.dumps(openai_error(413, message) if path.startswith("/v1/") else {"detail": message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
