"""Who may change aliases through the dashboard: read-only unless the server has a token.

With ``EMBEDOPS_UI_TOKEN`` set when the server starts, a person signs in with that token
(``/ui/login``) and gets a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) that names
when it was issued and is signed with the token: several workers and restarts agree without any
state, a session expires ``session_ttl`` seconds after sign-in, and changing the token revokes every
session at once (their signatures no longer verify). Every write form carries a CSRF token derived
from the session (the double-submit pattern, OWASP's "signed double-submit cookie"), and a request
whose ``Origin`` names another host is refused. Scripts may instead send
``Authorization: Bearer <token>`` (no cookie, so no CSRF check). Without a token configured every
write is refused with 403. Values are compared as UTF-8 bytes in constant time, so a malformed or
non-ASCII cookie, token or CSRF value is refused, never an error.

>>> auth = UiAuth("s3cret", clock=lambda: 1000.0)
>>> cookie = auth.session_cookie()
>>> auth.session(cookie) is not None
True
>>> UiAuth("s3cret", clock=lambda: 1000.0 + 13 * 3600).session(cookie) is None   # expired (12 h)
True
>>> UiAuth("another", clock=lambda: 1000.0).session(cookie) is None            # the token changed
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "embedops_ui"
TOKEN_ENV = "EMBEDOPS_UI_TOKEN"
SESSION_TTL = 12 * 3600.0


class WriteRefused(Exception):
    """A write request without the token, a valid session or the CSRF token (HTTP 403)."""


class NotSignedIn(WriteRefused):
    """A write request with no valid session and no token (HTTP 401)."""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


@dataclass(frozen=True)
class UiAuth:
    token: str | None = None
    session_ttl: float = SESSION_TTL
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    @property
    def writable(self) -> bool:
        return bool(self.token)

    def _sign(self, value: str) -> str:
        assert self.token
        return hmac.new(self.token.encode(), value.encode(), hashlib.sha256).hexdigest()

    def accepts(self, given: str | None) -> bool:
        """Whether ``given`` is the configured token (constant-time)."""
        return self.writable and given is not None and _same(given, self.token)

    def session_cookie(self) -> str:
        """A new session's cookie value: ``<id>.<issued, unix seconds>.<signature>``."""
        sid, issued = secrets.token_hex(16), int(self.clock())
        return f"{sid}.{issued}.{self._sign(f'session:{sid}:{issued}')}"

    def session(self, cookie: str | None) -> str | None:
        """The session id of a valid, unexpired ``cookie``, else None."""
        if not self.writable or not cookie or cookie.count(".") != 2:
            return None
        sid, issued, sig = cookie.split(".")
        if not issued.isascii() or not issued.isdigit() or not _same(sig, self._sign(f"session:{sid}:{issued}")):
            return None
        age = self.clock() - int(issued)
        return sid if 0 <= age <= self.session_ttl else None

    def csrf(self, sid: str | None) -> str:
        """The CSRF token forms of session ``sid`` carry ("" without a session)."""
        return self._sign("csrf:" + sid) if sid and self.writable else ""

    @staticmethod
    def check_origin(origin: str | None, host: str | None) -> None:
        """Raise WriteRefused when a request's ``Origin`` names another host than this server."""
        if origin and host and origin.split("://", 1)[-1].rstrip("/") != host:
            raise WriteRefused(f"cross-site request refused (Origin {origin} is not this server, {host})")

    def caller(self, *, cookie: str | None, authorization: str | None, origin: str | None,
               host: str | None) -> str | None:
        """Who is writing, checked before the request's body is read: None for a script with the
        bearer token, else the session id (whose CSRF token :meth:`check_csrf` checks next).
        Raises NotSignedIn (401) or WriteRefused (403)."""
        if not self.writable:
            raise WriteRefused(f"this dashboard is read-only: start the server with {TOKEN_ENV} set to allow "
                               "promote, rollback and canary abort")
        self.check_origin(origin, host)
        if authorization and authorization.startswith("Bearer "):
            if self.accepts(authorization[len("Bearer "):]):
                return None
            raise WriteRefused("wrong token in the Authorization header")
        sid = self.session(cookie)
        if sid is None:
            raise NotSignedIn("sign in with the dashboard token first (/ui/login); sessions last "
                              f"{self.session_ttl / 3600:g} h")
        return sid

    def check_csrf(self, sid: str | None, csrf: str | None) -> None:
        """Raise WriteRefused unless a session's write carries its CSRF token (``sid`` None: bearer)."""
        if sid is not None and (not csrf or not _same(csrf, self.csrf(sid))):
            raise WriteRefused("missing or wrong CSRF token: reload the page and try again")

    def check_write(self, *, cookie: str | None, csrf: str | None, authorization: str | None,
                    origin: str | None, host: str | None) -> None:
        """Raise WriteRefused unless this write request may change an alias (:meth:`caller`, then
        :meth:`check_csrf`)."""
        self.check_csrf(self.caller(cookie=cookie, authorization=authorization, origin=origin, host=host), csrf)
