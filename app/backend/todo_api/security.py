"""Password hashing, JWT tokens and the bearer-token dependency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request

from todo_api.routes.schemas import IdPath
from todo_api.settings import Settings

_hasher = PasswordHasher()
# A real hash to verify against when the user does not exist (keeps timing similar).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(user_id: int, settings: Settings) -> str:
    now = datetime.now(UTC)
    payload = {"sub": str(user_id), "iat": now, "exp": now + timedelta(minutes=settings.token_ttl_minutes)}
    return jwt.encode(payload, settings.auth_secret.get_secret_value(), algorithm="HS256")


class AuthError(Exception):
    def __init__(self, detail: str, status_code: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


def user_id_from_token(token: str, settings: Settings) -> int:
    try:
        payload = jwt.decode(
            token,
            settings.auth_secret.get_secret_value(),
            algorithms=["HS256"],
            options={"require": ["sub", "exp"]},
        )
        return int(payload["sub"])
    except jwt.ExpiredSignatureError:
        raise AuthError("Session expired, sign in again") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise AuthError("Invalid token, sign in again") from None


def user_id_from_header(authorization: str | None, settings: Settings) -> int:
    if not authorization:
        raise AuthError("Not signed in: send an 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Malformed Authorization header: expected 'Bearer <token>'")
    return user_id_from_token(token.strip(), settings)


def authorized_user(request: Request, user_id: IdPath) -> int:
    """Dependency for /api/{user_id}/...: the token must belong to user_id."""
    settings: Settings = request.app.state.settings
    try:
        subject = user_id_from_header(request.headers.get("authorization"), settings)
    except AuthError as exc:
        raise HTTPException(exc.status_code, exc.detail, headers={"WWW-Authenticate": "Bearer"}) from None
    if subject != user_id:
        raise HTTPException(403, "You are not allowed to access another user's data")
    return user_id
