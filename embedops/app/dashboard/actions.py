"""The dashboard's actions, one method each (:class:`Actions`): sign in and out, the confirmation
page of a switch, and the switch itself. A confirmation page names what changes and carries the
alias value it showed, so the switch is a compare-and-swap against what the person saw; the switch
goes through the same functions as the CLI (a promotion needs a passing guard report under the
server's policy file, exactly as ``embedops promote``), with the dashboard and the client address
as the actor."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from embedops.app.dashboard.auth import COOKIE, NotSignedIn, UiAuth, WriteRefused
from embedops.app.dashboard.pages import Pages
from embedops.app.promotion import promote as promote_index
from embedops.errors import AliasConflictError, EmbedopsError, NotFoundError, PromotionRefused, UsageError
from embedops.registry import UNSET, Registry

MAX_FORM_BYTES = 16_384  # a dashboard form is an alias, an index id, a reason and a CSRF token


def _actor(request: Request) -> str:
    return f"dashboard ({request.client.host if request.client else 'unknown client'})"


class Actions:
    """What a signed-in person may change, checked (session or bearer token, origin, CSRF) before a
    form is read; ``policy_file``: the guard policy a promotion is judged under."""

    def __init__(self, registry: Registry, pages: Pages, auth: UiAuth, policy_file: str | None = None):
        self.registry, self.pages, self.auth, self.policy_file = registry, pages, auth, policy_file

    async def _form(self, request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise HTTPException(413, f"a dashboard form is at most {MAX_FORM_BYTES} bytes")
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    async def login(self, request: Request):
        try:
            self.auth.check_origin(request.headers.get("origin"), request.headers.get("host"))
        except WriteRefused as exc:
            return self.pages.message(request, 403, "Refused", str(exc), css="fail")
        data = await self._form(request)
        if not self.auth.accepts(data.get("token")):
            why = (
                "wrong token"
                if self.auth.writable
                else "this server has no EMBEDOPS_UI_TOKEN: the dashboard is read-only"
            )
            return self.pages.message(request, 403, "Not signed in", why, back="/ui/login", css="fail")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            self.auth.session_cookie(),
            httponly=True,
            samesite="strict",
            path="/",
            max_age=int(self.auth.session_ttl),
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request):
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def confirm(self, request: Request, action: str, alias: str = "production", index_id: str | None = None):
        if self.auth.session(request.cookies.get(COOKIE)) is None:
            return self.pages.message(
                request,
                403,
                "Sign in first",
                "changing an alias needs the dashboard token",
                back="/ui/login",
                css="fail",
            )
        head = self.registry.aliases.get(alias)
        if head is None:
            return self.pages.not_found(request, NotFoundError(f"alias {alias!r} has no records"))
        back = f"/ui/aliases/{alias}"
        common = {"title": "Confirm", "nav": "", "action": action, "back": back}
        if action == "rollback" and head.previous:
            return self.pages.render(
                request,
                "confirm.html",
                **common,
                heading=f"Roll back {alias}?",
                change=f"{alias} will point at {head.previous} instead of {head.value}"
                + (f", and its canary of {head.canary.index_id} ends" if head.canary else "")
                + ".",
                fields={"alias": alias, "expect": head.value or ""},
                button="Roll back",
                button_class="danger",
                default_reason="rolled back from the dashboard",
            )
        if action == "canary-abort" and head.canary:
            return self.pages.render(
                request,
                "confirm.html",
                **common,
                heading=f"Abort the canary on {alias}?",
                change=f"{head.canary.index_id} stops answering {head.canary.percent:g}% of the "
                f"searches of {alias}; all of them go to {head.value}.",
                fields={"alias": alias, "expect_canary": head.canary.index_id},
                button="Abort canary",
                button_class="danger",
                default_reason="canary aborted from the dashboard",
            )
        if action == "promote" and index_id:
            return self.pages.render(
                request,
                "confirm.html",
                **common,
                heading=f"Promote to {alias}?",
                change=f"{alias} will point at {index_id} instead of {head.value}, if a passing guard "
                "report authorises exactly this switch now.",
                fields={"alias": alias, "index_id": index_id, "expect": head.value or ""},
                button="Promote",
                button_class="primary",
                default_reason="",
            )
        missing = "previous index" if action == "rollback" else "canary"
        why = (
            f"alias {alias!r} has no {missing} for {action!r}"
            if action in ("rollback", "canary-abort")
            else f"unknown action {action!r}"
        )
        return self.pages.message(request, 409, "Nothing to confirm", why, back=back, css="fail")

    async def act(self, request: Request, action: str):
        try:  # who is asking is checked before the body is read
            sid = self.auth.caller(
                cookie=request.cookies.get(COOKIE),
                authorization=request.headers.get("authorization"),
                origin=request.headers.get("origin"),
                host=request.headers.get("host"),
            )
            data = await self._form(request)
            self.auth.check_csrf(sid, data.get("csrf"))
        except NotSignedIn as exc:
            return self.pages.message(request, 401, "Not signed in", str(exc), back="/ui/login", css="fail")
        except WriteRefused as exc:
            return self.pages.message(request, 403, "Refused", str(exc), css="fail")
        alias = data.get("alias") or "production"
        reason = (data.get("reason") or "").strip() or None
        by = _actor(request)

        def run():
            if action == "rollback":
                return self.registry.rollback(
                    alias, reason=reason or "rolled back from the dashboard", expect=data.get("expect", UNSET), by=by
                )
            if action == "canary-abort":
                return self.registry.abort_canary(
                    alias,
                    reason=reason or "canary aborted from the dashboard",
                    expect_canary=data.get("expect_canary") or None,
                    by=by,
                )
            if action == "promote":
                if not data.get("index_id"):
                    raise UsageError("the form field 'index_id' is required")
                return promote_index(
                    self.registry,
                    data["index_id"],
                    alias,
                    policy_file=Path(self.policy_file) if self.policy_file else None,
                    expect=data.get("expect") or None,
                    reason=reason,
                    by=by,
                )
            raise NotFoundError(f"unknown action {action!r}; use promote, rollback or canary-abort")

        back = f"/ui/aliases/{alias}"
        try:
            state = await run_in_threadpool(run)
        except NotFoundError as exc:
            return self.pages.message(request, 404, "Not found", str(exc), back=back, css="fail")
        except (PromotionRefused, AliasConflictError) as exc:
            return self.pages.message(request, 409, "Refused", str(exc), back=back, css="fail")
        except KeyError as exc:
            return self.pages.message(
                request, 422, "Missing field", f"the form field {exc} is required", back=back, css="fail"
            )
        except (UsageError, EmbedopsError) as exc:
            return self.pages.message(request, 409, "Refused", str(exc), back=back, css="fail")
        return self.pages.message(
            request,
            200,
            "Done",
            f"{alias} now points at {state.value} (record {state.seq}, by {by}"
            + (f"; was {state.previous}" if state.previous else "")
            + ").",
            back=back,
            css="pass",
        )
