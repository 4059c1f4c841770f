"""Sign-up, sign-in (throttled), sign-out (revokes every token issued before) and the session check."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from todo_api.models import users, utcnow
from todo_api.passwords import HashingBusy, password_problem
from todo_api.routes.schemas import AuthOut, Credentials, LoginIn, SessionOut
from todo_api.security import REVOKED, AuthError, caller_from_header, issue_token, unauthorized
from todo_api.throttle import addr_key, signup_key, user_key

router = APIRouter(prefix="/api/auth", tags=["auth"])

BUSY = "The server is busy signing other people in; try again in a moment"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def too_many(what: str, seconds: int) -> HTTPException:
    return HTTPException(429, f"Too many {what}; try again in {seconds} seconds",
                         headers={"Retry-After": str(seconds)})


def busy() -> HTTPException:
    return HTTPException(503, BUSY, headers={"Retry-After": "2"})


@router.post("/signup", status_code=201, response_model=AuthOut, responses={409: {}, 429: {}, 503: {}})
async def signup(body: Credentials, request: Request) -> AuthOut:
    state = request.app.state
    settings = state.settings
    problem = password_problem(body.username, body.password)
    if problem:
        raise HTTPException(422, f"password: {problem}")
    taken = HTTPException(409, f"Username '{body.username}' is already taken")
    key = signup_key(_client(request))
    async with state.db.read() as conn:
        wait = await state.throttle.retry_after(conn, {key: settings.signups_per_address})
        if wait:
            raise too_many("sign-ups from your address", wait)
        await state.throttle.hit(conn, key)
        if (await conn.execute(select(users.c.id).where(func.lower(users.c.username) == body.username.lower()))).first():
            raise taken
    try:
        password_hash = await state.hashing.hash(body.password)
    except HashingBusy:
        raise busy() from None
    try:
        async with state.db.read() as conn:
            user_id = (await conn.execute(
                insert(users).values(username=body.username, password_hash=password_hash, created_at=utcnow())
                .returning(users.c.id)
            )).scalar_one()
    except IntegrityError:
        raise taken from None
    return AuthOut(user_id=user_id, username=body.username, token=issue_token(user_id, 0, settings))


@router.post("/login", response_model=AuthOut, responses={401: {}, 429: {}, 503: {}})
async def login(body: LoginIn, request: Request) -> AuthOut:
    state = request.app.state
    settings = state.settings
    ukey, akey = user_key(body.username), addr_key(_client(request))
    async with state.db.read() as conn:
        wait = await state.throttle.retry_after(
            conn, {ukey: settings.auth_failures_per_user, akey: settings.auth_failures_per_address})
        if wait:
            raise too_many("failed sign-ins", wait)
        user = (await conn.execute(
            select(users.c.id, users.c.username, users.c.password_hash, users.c.token_version)
            .where(func.lower(users.c.username) == body.username.lower())
        )).first()
    try:  # no database connection is held while hashing
        ok = await state.hashing.verify(body.password, user.password_hash if user else None)
    except HashingBusy:
        raise busy() from None
    if not ok or user is None:
        async with state.db.read() as conn:
            await state.throttle.hit(conn, ukey)
            await state.throttle.hit(conn, akey)
        raise HTTPException(401, "Wrong username or password")
    new_hash = None
    if state.hashing.needs_rehash(user.password_hash):  # older, costlier parameters: re-hash once
        try:
            new_hash = await state.hashing.hash(body.password)
        except HashingBusy:
            new_hash = None
    async with state.db.read() as conn:
        await state.throttle.clear(conn, ukey)
        if new_hash:
            await conn.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
    return AuthOut(user_id=user.id, username=user.username,
                   token=issue_token(user.id, user.token_version, settings))


def _caller(request: Request):  # type: ignore[no-untyped-def]
    try:
        return caller_from_header(request.headers.get("authorization"), request.app.state.settings)
    except AuthError as exc:
        raise unauthorized(exc.detail) from None


@router.post("/logout", status_code=204, responses={401: {}})
async def logout(request: Request) -> Response:
    """Ends the session: every token of this user issued before now is refused from now on."""
    caller = _caller(request)
    async with request.app.state.db.read() as conn:
        result = await conn.execute(
            update(users).where(users.c.id == caller.user_id, users.c.token_version == caller.token_version)
            .values(token_version=users.c.token_version + 1)
        )
    if not result.rowcount:
        raise unauthorized("Your session has already ended, sign in again")
    return Response(status_code=204)


@router.get("/session", response_model=SessionOut, responses={401: {}})
async def session(request: Request) -> SessionOut:
    """Who the token belongs to, if its session is still current."""
    caller = _caller(request)
    async with request.app.state.db.read() as conn:
        row = (await conn.execute(
            select(users.c.username, users.c.token_version).where(users.c.id == caller.user_id))).first()
    if row is None or row.token_version != caller.token_version:
        raise unauthorized(REVOKED)
    return SessionOut(user_id=caller.user_id, username=row.username)
