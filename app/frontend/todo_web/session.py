"""Signed session cookie (itsdangerous) whose Secure flag follows the request's scheme.

The session holds the backend token, user id, username and the CSRF token. It is
signed (tamper-proof), HttpOnly (invisible to JavaScript) and SameSite=Lax.
Starlette's own SessionMiddleware fixes the Secure flag at start-up; this one
decides per request, so the same image works behind plain http and TLS ingress.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from http.cookies import SimpleCookie
from typing import Any, Literal

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "todo_session"
AUTH_KEYS = ("token", "user_id", "username")


def request_is_https(scope: Scope) -> bool:
    """True when the browser reached us over https, directly or via a TLS proxy."""
    if scope.get("scheme") == "https":
        return True
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-proto":
            return value.decode("latin-1").split(",")[0].strip().lower() == "https"
    return False


class SignedSessionMiddleware:
    """Pure-ASGI middleware exposing ``request.session`` backed by a signed cookie."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str,
        *,
        max_age: int,
        secure: Literal["auto", "true", "false"] = "auto",
    ) -> None:
        self.app = app
        self.signer = itsdangerous.TimestampSigner(secret_key, salt="todo_web.session")
        self.max_age = max_age
        self.secure = secure

    def _load(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            payload = self.signer.unsign(raw.encode("utf-8"), max_age=self.max_age)
            data = json.loads(b64decode(payload))
        except (BadSignature, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _dump(self, data: dict[str, Any]) -> str:
        payload = b64encode(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        return self.signer.sign(payload).decode("utf-8")

    def _secure_for(self, scope: Scope) -> bool:
        if self.secure == "auto":
            return request_is_https(scope)
        return self.secure == "true"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        had_cookie = COOKIE_NAME in connection.cookies
        initial = self._load(connection.cookies.get(COOKIE_NAME))
        scope["session"] = dict(initial)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: dict[str, Any] = scope["session"]
                headers = MutableHeaders(scope=message)
                cookie: SimpleCookie = SimpleCookie()
                if session:
                    if session != initial or not had_cookie:
                        cookie[COOKIE_NAME] = self._dump(session)
                        cookie[COOKIE_NAME]["max-age"] = self.max_age
                elif had_cookie:
                    cookie[COOKIE_NAME] = ""
                    cookie[COOKIE_NAME]["max-age"] = 0
                    cookie[COOKIE_NAME]["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
                if COOKIE_NAME in cookie:
                    morsel = cookie[COOKIE_NAME]
                    morsel["path"] = "/"
                    morsel["httponly"] = True
                    morsel["samesite"] = "Lax"
                    if self._secure_for(scope):
                        morsel["secure"] = True
                    headers.append("Set-Cookie", morsel.OutputString())
            await send(message)

        await self.app(scope, receive, send_wrapper)


def sign_in(session: dict[str, Any], *, token: str, user_id: str, username: str) -> None:
    """Store the backend identity in the session (server-side only)."""
    session["token"] = token
    session["user_id"] = user_id
    session["username"] = username


def sign_out(session: dict[str, Any]) -> None:
    """Forget the identity and the CSRF token; a fresh one is issued on next use."""
    session.clear()


def current_user(session: dict[str, Any]) -> tuple[str, str, str] | None:
    """(user_id, token, username) when signed in, else None."""
    token, user_id = session.get("token"), session.get("user_id")
    if not token or user_id in (None, ""):
        return None
    return str(user_id), str(token), str(session.get("username") or "")
