"""Sign-up, sign-in (throttled), sign-out (revokes every token issued before) and the session check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from todo_api import idempotency
from todo_api.db import Database
from todo_api.deps import ClientAddress, DatabaseDep, HashingDep, SettingsDep, ThrottleDep, TokenCaller
from todo_api.models import users, utcnow
from todo_api.passwords import HashingBusy, PasswordHashing, password_problem
from todo_api.routes.schemas import AuthOut, Credentials, LoginIn, SessionOut
from todo_api.security import REVOKED, issue_token, unauthorized
from todo_api.settings import Settings
from todo_api.throttle import (
    Limit,
    Refusal,
    Throttle,
    addr_key,
    hourly_signup_key,
    signup_key,
    user_at_address_key,
    user_key,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])

BUSY = "The server is busy signing other people in; try again in a moment"
HOUR = 3600
# Defaults of the looser limits (settings.py): never below the tighter limit they back up.
FAILURES_PER_USER_ALL_ADDRESSES = 100
SIGNUPS_PER_ADDRESS_PER_HOUR = 50


def _per(seconds: int) -> str:
    if seconds == HOUR:
        return "per hour"
    return f"in {seconds // 60} minutes" if seconds % 60 == 0 else f"in {seconds} seconds"


def too_many(refusal: Refusal) -> HTTPException:
    limit, seconds = refusal.limit, refusal.retry_after
    return HTTPException(
        429, f"Too many {limit.what} (at most {limit.most} {_per(limit.window_seconds)}); "
             f"try again in {seconds} seconds",
        headers={"Retry-After": str(seconds)})


def busy() -> HTTPException:
    return HTTPException(503, BUSY, headers={"Retry-After": "2"})


def signups_per_hour(settings: Settings) -> int:
    return settings.signups_per_address_per_hour or max(SIGNUPS_PER_ADDRESS_PER_HOUR, settings.signups_per_address)


def failures_per_user_all_addresses(settings: Settings) -> int:
    return settings.auth_failures_per_user_all_addresses or max(FAILURES_PER_USER_ALL_ADDRESSES,
                                                                settings.auth_failures_per_user)


def signup_limits(settings: Settings, address: str) -> list[Limit]:
    return [
        Limit(signup_key(address), settings.signups_per_address, settings.auth_window_seconds,
              "sign-ups from your address"),
        Limit(hourly_signup_key(address), signups_per_hour(settings), HOUR,
              "sign-ups from your address"),
    ]


def login_limits(settings: Settings, username: str, address: str) -> list[Limit]:
    """The tight limit is per user AND address, so nobody elsewhere can lock a user out;
    the per-user hourly ceiling across addresses (ASVS V2.2.1: at most 100 failures an hour
    on one account) stops a guesser spread over many addresses."""
    window = settings.auth_window_seconds
    return [
        Limit(user_at_address_key(username, address), settings.auth_failures_per_user, window,
              "failed sign-ins to this account from your address"),
        Limit(user_key(username), failures_per_user_all_addresses(settings), HOUR,
              "failed sign-ins to this account"),
        Limit(addr_key(address), settings.auth_failures_per_address, window,
              "failed sign-ins from your address"),
    ]


@router.post("/signup", status_code=201, response_model=AuthOut,
             responses={409: {}, 429: {}, 503: {}, **idempotency.ERRORS})
async def signup(body: Credentials, request: Request, address: ClientAddress, settings: SettingsDep,
                 db: DatabaseDep, throttle: ThrottleDep, hashing: HashingDep,
                 idempotency_key: idempotency.IdempotencyKey = None) -> Any:
    """With an Idempotency-Key, a retry gets the account the first request made (the key is the
    username's: there is no user yet), with a fresh token: a token is never stored."""
    key = idempotency.key_from(request)
    accounts = Accounts(settings, db, throttle, hashing)
    if key is None:
        return await create_account(accounts, body, address)

    async def run() -> tuple[int, Any]:
        account = await create_account(accounts, body, address)
        return 201, {"user_id": account.user_id, "username": account.username}

    fingerprint = idempotency.fingerprint(settings.auth_secret.get_secret_value(), "POST", request.url.path,
                                          body.model_dump())
    outcome = await idempotency.replay_or_run(db, f"signup:{body.username.lower()}", key, fingerprint, run)
    token = issue_token(outcome.body["user_id"], 0, settings)
    return JSONResponse({**outcome.body, "token": token}, status_code=outcome.status, headers=outcome.headers())


@dataclass(frozen=True, slots=True)
class Accounts:
    """What creating an account takes: the limits, the database, the throttle, the hashing."""

    settings: Settings
    db: Database
    throttle: Throttle
    hashing: PasswordHashing

async def create_account(accounts: Accounts, body: Credentials, address: str) -> AuthOut:
    settings, db, throttle = accounts.settings, accounts.db, accounts.throttle
    problem = password_problem(body.username, body.password)
    if problem:
        raise HTTPException(422, f"password: {problem}")
    taken = HTTPException(409, f"Username '{body.username}' is already taken")
    limits = signup_limits(settings, address)
    async with throttle.turn(limits), db.read() as conn:
        refusal = await throttle.acquire(conn, limits)
        if refusal:
            raise too_many(refusal)
        if (await conn.execute(select(users.c.id).where(func.lower(users.c.username) == body.username.lower()))).first():
            raise taken
    try:
        password_hash = await accounts.hashing.hash(body.password)
    except HashingBusy:
        raise busy() from None
    try:
        async with db.read() as conn:
            user_id = (await conn.execute(
                insert(users).values(username=body.username, password_hash=password_hash, created_at=utcnow())
                .returning(users.c.id)
            )).scalar_one()
    except IntegrityError:
        raise taken from None
    return AuthOut(user_id=user_id, username=body.username, token=issue_token(user_id, 0, settings))


@router.post("/login", response_model=AuthOut, responses={401: {}, 429: {}, 503: {}})
async def login(body: LoginIn, address: ClientAddress, settings: SettingsDep, db: DatabaseDep,
                throttle: ThrottleDep, hashing: HashingDep) -> AuthOut:
    """The attempt is counted before the password is checked (throttle.py); a failure stays
    counted, a success is uncounted and clears this user's count at this address."""
    limits = login_limits(settings, body.username, address)
    async with throttle.turn(limits), db.read() as conn:
        refusal = await throttle.acquire(conn, limits)
        if refusal:
            raise too_many(refusal)
        user = (await conn.execute(
            select(users.c.id, users.c.username, users.c.password_hash, users.c.token_version)
            .where(func.lower(users.c.username) == body.username.lower())
        )).first()
    try:  # no database connection is held while hashing
        ok = await hashing.verify(body.password, user.password_hash if user else None)
    except HashingBusy:
        async with throttle.turn(limits), db.read() as conn:  # not checked: not a failure
            await throttle.release(conn, [limit.key for limit in limits])
        raise busy() from None
    if not ok or user is None:
        raise HTTPException(401, "Wrong username or password")
    new_hash = None
    if hashing.needs_rehash(user.password_hash):  # older, costlier parameters: re-hash once
        try:
            new_hash = await hashing.hash(body.password)
        except HashingBusy:
            new_hash = None
    async with throttle.turn(limits), db.read() as conn:
        pair, *others = limits
        await throttle.clear(conn, pair.key)
        await throttle.release(conn, [limit.key for limit in others])
        if new_hash:
            await conn.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
    return AuthOut(user_id=user.id, username=user.username,
                   token=issue_token(user.id, user.token_version, settings))


@router.post("/logout", status_code=204, responses={401: {}})
async def logout(caller: TokenCaller, db: DatabaseDep) -> Response:
    """Ends the session: every token of this user issued before now is refused from now on."""
    async with db.read() as conn:
        result = await conn.execute(
            update(users).where(users.c.id == caller.user_id, users.c.token_version == caller.token_version)
            .values(token_version=users.c.token_version + 1)
        )
    if not result.rowcount:
        raise unauthorized("Your session has already ended, sign in again")
    return Response(status_code=204)


@router.get("/session", response_model=SessionOut, responses={401: {}})
async def session(caller: TokenCaller, db: DatabaseDep) -> SessionOut:
    """Who the token belongs to, if its session is still current."""
    async with db.read() as conn:
        row = (await conn.execute(
            select(users.c.username, users.c.token_version).where(users.c.id == caller.user_id))).first()
    if row is None or row.token_version != caller.token_version:
        raise unauthorized(REVOKED)
    return SessionOut(user_id=caller.user_id, username=row.username)
