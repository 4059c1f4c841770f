"""Signed session cookie (itsdangerous) whose Secure flag follows the request's scheme
(the connection's own, or X-Forwarded-Proto from a trusted proxy only).

The session holds the backend token, user id, username and the CSRF token. It is
signed (tamper-proof), HttpOnly (invisible to JavaScript) and SameSite=Lax.
Starlette's own SessionMiddleware fixes the Secure flag at start-up; this one
decides per request, so the same image works behind plain http and TLS ingress.
"""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any, Literal

import itsdangerous
from itsdangerous.exc import BadSignature
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .forwarded import Network, request_is_https

COOKIE_NAME = "todo_session"
AUTH_KEYS = ("token", "user_id", "username")


def make_signer(secret_key: str) -> itsdangerous.TimestampSigner:
    return itsdangerous.TimestampSigner(secret_key, salt="todo_web.session")


def encode_session(signer: itsdangerous.TimestampSigner, data: dict[str, Any]) -> str:
    """Cookie value for ``data``: base64 JSON, signed with a timestamp."""
    raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    payload = urlsafe_b64encode(raw).rstrip(b"=")  # cookie-safe: no quoting needed
    return signer.sign(payload).decode("ascii")


def decode_session(
    signer: itsdangerous.TimestampSigner, raw: str | None, *, max_age: int
) -> dict[str, Any]:
    """The session dict, or {} when the cookie is absent, forged, expired or garbled."""
    if not raw:
        return {}
    try:
        payload = signer.unsign(raw.encode("ascii"), max_age=max_age)
        data = json.loads(urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    except (BadSignature, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class SignedSessionMiddleware:
    """Pure-ASGI middleware exposing ``request.session`` backed by a signed cookie."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str,
        *,
        max_age: int,
        secure: Literal["auto", "true", "false"] = "auto",
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.app = app
        self.signer = make_signer(secret_key)
        self.max_age = max_age
        self.secure = secure
        self.trusted_proxies = trusted_proxies

    def _load(self, raw: str | None) -> dict[str, Any]:
        return decode_session(self.signer, raw, max_age=self.max_age)

    def _dump(self, data: dict[str, Any]) -> str:
        return encode_session(self.signer, data)

    def _secure_for(self, scope: Scope) -> bool:
        if self.secure == "auto":
            return request_is_https(scope, self.trusted_proxies)
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
                value: str | None = None
                if session and (session != initial or not had_cookie):
                    value = f"{self._dump(session)}; Max-Age={self.max_age}"
                elif not session and had_cookie:
                    value = "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
                if value is not None:
                    cookie = f"{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax"
                    if self._secure_for(scope):
                        cookie += "; Secure"
                    headers.append("Set-Cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_wrapper)


def sign_in(session: dict[str, Any], *, token: str, user_id: str, username: str) -> None:
    """Store the backend identity in the session (server-side only)."""
    session["token"] = token
    session["user_id"] = user_id
    session["username"] = username


def sign_out(session: dict[str, Any]) -> None:
    """Forget the identity (token, user id, username).

    The CSRF token is bound to the browser's cookie, not to the identity, so it is
    kept: the sign-in form the user lands on next still carries a valid token.
    """
    for key in AUTH_KEYS:
        session.pop(key, None)


def current_user(session: dict[str, Any]) -> tuple[str, str, str] | None:
    """(user_id, token, username) when signed in, else None."""
    token, user_id = session.get("token"), session.get("user_id")
    if not token or user_id in (None, ""):
        return None
    return str(user_id), str(token), str(session.get("username") or "")
