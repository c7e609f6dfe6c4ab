"""Who may change aliases through the dashboard: read-only unless the server has a token.

With ``EMBEDOPS_UI_TOKEN`` set when the server starts, a person signs in with that token
(``/ui/login``) and gets a session cookie (HttpOnly, SameSite=Strict), signed with the token, so
several workers and restarts agree without any state. Every write form carries a CSRF token derived
from the session (the double-submit pattern, OWASP's "signed double-submit cookie"), and a request
whose ``Origin`` names another host is refused. Scripts may instead send
``Authorization: Bearer <token>`` (no cookie, so no CSRF check). Without a token configured every
write is refused with 403.

>>> auth = UiAuth("s3cret")
>>> cookie = auth.session_cookie()
>>> auth.session(cookie) is not None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

COOKIE = "embedops_ui"
TOKEN_ENV = "EMBEDOPS_UI_TOKEN"


class WriteRefused(Exception):
    """A write request without the token, a valid session or the CSRF token (HTTP 403)."""


@dataclass(frozen=True)
class UiAuth:
    token: str | None = None

    @property
    def writable(self) -> bool:
        return bool(self.token)

    def _sign(self, value: str) -> str:
        assert self.token
        return hmac.new(self.token.encode(), value.encode(), hashlib.sha256).hexdigest()

    def accepts(self, given: str | None) -> bool:
        """Whether ``given`` is the configured token (constant-time)."""
        return self.writable and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session_cookie(self) -> str:
        """A new session's cookie value: ``<id>.<signature>``."""
        sid = secrets.token_hex(16)
        return f"{sid}.{self._sign('session:' + sid)}"

    def session(self, cookie: str | None) -> str | None:
        """The session id of a valid ``cookie``, else None."""
        if not self.writable or not cookie or "." not in cookie:
            return None
        sid, sig = cookie.split(".", 1)
        return sid if hmac.compare_digest(sig, self._sign("session:" + sid)) else None

    def csrf(self, sid: str | None) -> str:
        """The CSRF token forms of session ``sid`` carry ("" without a session)."""
        return self._sign("csrf:" + sid) if sid and self.writable else ""

    @staticmethod
    def check_origin(origin: str | None, host: str | None) -> None:
        """Raise WriteRefused when a request's ``Origin`` names another host than this server."""
        if origin and host and origin.split("://", 1)[-1].rstrip("/") != host:
            raise WriteRefused(f"cross-site request refused (Origin {origin} is not this server, {host})")

    def check_write(self, *, cookie: str | None, csrf: str | None, authorization: str | None,
                    origin: str | None, host: str | None) -> None:
        """Raise WriteRefused unless this write request may change an alias."""
        if not self.writable:
            raise WriteRefused(f"this dashboard is read-only: start the server with {TOKEN_ENV} set to allow "
                               "promote, rollback and canary abort")
        self.check_origin(origin, host)
        if authorization and authorization.startswith("Bearer "):
            if self.accepts(authorization[len("Bearer "):]):
                return
            raise WriteRefused("wrong token in the Authorization header")
        sid = self.session(cookie)
        if sid is None:
            raise WriteRefused("sign in with the dashboard token first (/ui/login)")
        if not csrf or not hmac.compare_digest(csrf, self.csrf(sid)):
            raise WriteRefused("missing or wrong CSRF token: reload the page and try again")
