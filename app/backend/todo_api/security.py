"""Session tokens (JWT with a token version) and the bearer-token check.

A token names the user and the user's token version when it was issued. Signing out
bumps the version in the database, so every token issued before is refused from then
on: `session_is_current` is checked against the database on every authenticated call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.models import users
from todo_api.settings import Settings

REVOKED = "Your session has ended (signed out), sign in again"


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    token_version: int


def issue_token(user_id: int, token_version: int, settings: Settings) -> str:
    now = datetime.now(UTC)
    payload = {"sub": str(user_id), "ver": token_version, "iat": now,
               "exp": now + timedelta(minutes=settings.token_ttl_minutes)}
    return jwt.encode(payload, settings.auth_secret.get_secret_value(), algorithm="HS256")


class AuthError(Exception):
    def __init__(self, detail: str, status_code: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


class _VerifiedTokens:
    """Tokens already verified, with their expiry: a token is checked once, not on every
    request (the signature check is most of an authenticated request's own CPU).
    Bounded; an entry is only ever served before its token's `exp`."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.entries: dict[tuple[str, str], tuple[Caller, float]] = {}

    def get(self, key: tuple[str, str]) -> Caller | None:
        hit = self.entries.get(key)
        if hit is None:
            return None
        if hit[1] <= time.time():
            self.entries.pop(key, None)
            return None
        return hit[0]

    def put(self, key: tuple[str, str], caller: Caller, expires: float) -> None:
        if len(self.entries) >= self.size:
            self.entries.clear()  # crude but bounded; the hot tokens come straight back
        self.entries[key] = (caller, expires)


_verified = _VerifiedTokens()


def caller_from_token(token: str, settings: Settings) -> Caller:
    key = (token, settings.auth_secret.get_secret_value())
    cached = _verified.get(key)
    if cached is not None:
        return cached
    try:
        payload = jwt.decode(
            token,
            settings.auth_secret.get_secret_value(),
            algorithms=["HS256"],
            options={"require": ["sub", "exp"]},
        )
        version = payload.get("ver", 0)  # tokens from before token versions existed: version 0
        if not isinstance(version, int) or isinstance(version, bool):
            raise TypeError("bad version")
        caller = Caller(int(payload["sub"]), version)
        _verified.put(key, caller, float(payload["exp"]))
        return caller
    except jwt.ExpiredSignatureError:
        raise AuthError("Session expired, sign in again") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise AuthError("Invalid token, sign in again") from None


def caller_from_header(authorization: str | None, settings: Settings) -> Caller:
    if not authorization:
        raise AuthError("Not signed in: send an 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Malformed Authorization header: expected 'Bearer <token>'")
    return caller_from_token(token.strip(), settings)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def session_is_current(conn: AsyncConnection, caller: Caller) -> bool:
    version = (await conn.execute(select(users.c.token_version).where(users.c.id == caller.user_id))).scalar()
    return version is not None and version == caller.token_version


async def require_current(conn: AsyncConnection, caller: Caller) -> None:
    if not await session_is_current(conn, caller):
        raise unauthorized(REVOKED)
