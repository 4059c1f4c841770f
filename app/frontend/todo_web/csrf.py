"""Per-session CSRF tokens: forms carry ``csrf_token``, JavaScript sends ``X-CSRF-Token``."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import HTTPException, Request

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_MESSAGE = "Security check failed (missing or wrong CSRF token). Reload the page and try again."


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 16:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def rotate_csrf(session: dict[str, Any]) -> str:
    """A new token: at sign-in and sign-out, so a token seen before cannot be replayed."""
    session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def form_fields(request: Request) -> dict[str, str]:
    """The form's text fields. The body is read (and cached) first, so the route can read it again."""
    await request.body()
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def token_matches(session: dict[str, Any], supplied: str | None) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not supplied:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), supplied.encode("utf-8"))


async def require_csrf(request: Request) -> None:
    """FastAPI dependency for state-changing routes: header first, then form field."""
    supplied = request.headers.get(CSRF_HEADER)
    if not supplied:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(FORM_TYPES):
            supplied = (await form_fields(request)).get(CSRF_FIELD)
    if not token_matches(request.session, supplied):
        raise HTTPException(status_code=403, detail=CSRF_MESSAGE)
