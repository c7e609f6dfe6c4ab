"""OpenAI's error body, which every ``/v1/*`` answer of ``embedops serve`` uses (the body-size limit
included), so OpenAI clients show the message rather than a parse failure.

>>> openai_error(413, "request body over 4194304 bytes")["error"]["type"]
'invalid_request_error'
"""

from __future__ import annotations

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error body for ``status``."""
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error" if status >= 500 else
                                                             "invalid_request_error"),
                      "param": param, "code": code}}
