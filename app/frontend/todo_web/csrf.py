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
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            supplied = value if isinstance(value, str) else None
    if not token_matches(request.session, supplied):
        raise HTTPException(status_code=403, detail=CSRF_MESSAGE)
