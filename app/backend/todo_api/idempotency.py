"""Idempotency-Key for requests that create (after draft-ietf-httpapi-idempotency-key-header).

A client that lost the reply to a POST sends it again with the same `Idempotency-Key`; it
gets the first request's response (status and body) instead of a second task or account.

- The key is claimed before the work: a row (scope, key) whose primary key lets exactly one
  of any number of concurrent requests insert it. The others find the claim and answer 409
  while it is in progress, or replay the stored response once it is done.
- The same key with a different request (its fingerprint: an HMAC of the method, path and
  validated body, keyed with the server's secret so a stored fingerprint of a sign-up is no
  fast hash of the password) is a 422.
- Only a success is stored. Work that fails releases the claim, so a retry runs it again.
  A claim whose worker died (no response after `lease`) is taken over by the next retry.
- Rows live 24 hours; expired ones are deleted as requests come (at most once a minute
  per process), so the table holds at most a day of keyed creates.
- No connection is held while the work runs (a chat turn may wait seconds on a model).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.db import Database
from todo_api.models import idempotency_keys as keys
from todo_api.models import utcnow

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
LEASE = timedelta(seconds=120)
SWEEP_EVERY_S = 60.0
_KEY = re.compile(r"[\x20-\x7e]{1,128}")

BAD_KEY = f"{HEADER} must be 1 to 128 printable ASCII characters, sent once"
REUSED = f"{HEADER} reused with a different request"
IN_PROGRESS = f"A request with this {HEADER} is still in progress; try again shortly"
REPLAYED_HEADER = "Idempotent-Replayed"

Run = Callable[[], Awaitable[tuple[int, Any]]]
# A route's parameter, for the OpenAPI document; key_from reads and checks it (a bad one is a 400).
IdempotencyKey = Annotated[str | None, Header(alias=HEADER, description=(
    "Optional, 1-128 printable ASCII characters. A retry with the same key and body within 24 h "
    "gets the first response again (header Idempotent-Replayed: true) and creates nothing."))]
ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 409: {}}
_last_sweep: weakref.WeakKeyDictionary[Database, float] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Any
    replayed: bool

    def headers(self) -> dict[str, str]:
        return {REPLAYED_HEADER: "true"} if self.replayed else {}


def key_from(request: Request) -> str | None:
    """The request's Idempotency-Key, None without one; 400 for a malformed or repeated one."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1 or not _KEY.fullmatch(values[0]):
        raise HTTPException(400, BAD_KEY)
    return values[0]


def fingerprint(secret: str, method: str, path: str, body: Any) -> str:
    payload = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


async def replay_or_run(db: Database, scope: str, key: str, request_fingerprint: str, run: Run,
                        lease: timedelta = LEASE) -> Outcome:
    """The stored response for (scope, key), or `run()`'s (status, JSON body), stored for the
    retries. `run` raises to fail (e.g. an HTTPException); nothing is stored then."""
    await _sweep(db)
    if not await _claim_or_replay(db, scope, key, request_fingerprint, lease):
        row = await _stored(db, scope, key)
        return Outcome(row[0], json.loads(row[1]), replayed=True)
    try:
        status, body = await run()
    except BaseException:
        await _release(db, scope, key)
        raise
    await _store(db, scope, key, status, body)
    return Outcome(status, body, replayed=False)


async def _claim_or_replay(db: Database, scope: str, key: str, fp: str, lease: timedelta) -> bool:
    """True: this request owns the key and does the work. False: a stored response awaits it."""
    async with db.read() as conn:
        for _ in range(3):  # an expired row is deleted and the claim tried again
            if await _claim(conn, scope, key, fp):
                return True
            row = (await conn.execute(
                select(keys.c.fingerprint, keys.c.status, keys.c.created_at,
                       (keys.c.created_at < utcnow() - TTL).label("expired"))
                .where(keys.c.scope == scope, keys.c.key == key))).first()
            if row is None:
                continue  # released meanwhile
            if row.expired:
                await conn.execute(delete(keys).where(keys.c.scope == scope, keys.c.key == key,
                                                      keys.c.created_at == row.created_at))
                continue
            if not hmac.compare_digest(row.fingerprint, fp):
                raise HTTPException(422, REUSED)
            if row.status is not None:
                return False
            if await _take_over(conn, scope, key, lease):
                return True
            break
    raise HTTPException(409, IN_PROGRESS, headers={"Retry-After": "1"})


async def _claim(conn: AsyncConnection, scope: str, key: str, fp: str) -> bool:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    claimed = await conn.execute(
        insert(keys).values(scope=scope, key=key, fingerprint=fp, created_at=now, claimed_at=now)
        .on_conflict_do_nothing(index_elements=[keys.c.scope, keys.c.key]).returning(keys.c.key))
    return claimed.first() is not None  # (not rowcount: psycopg's is -1 for this statement)


async def _take_over(conn: AsyncConnection, scope: str, key: str, lease: timedelta) -> bool:
    """A claim left unfinished longer than `lease` (its worker died): this request takes it."""
    now = utcnow()
    taken = await conn.execute(
        update(keys).where(keys.c.scope == scope, keys.c.key == key, keys.c.status.is_(None),
                           keys.c.claimed_at < now - lease).values(claimed_at=now).returning(keys.c.key))
    return taken.first() is not None


async def _stored(db: Database, scope: str, key: str) -> tuple[int, str]:
    async with db.read() as conn:
        row = (await conn.execute(select(keys.c.status, keys.c.body)
                                  .where(keys.c.scope == scope, keys.c.key == key))).one()
    return int(row.status), str(row.body)


async def _store(db: Database, scope: str, key: str, status: int, body: Any) -> None:
    async with db.read() as conn:
        await conn.execute(update(keys).where(keys.c.scope == scope, keys.c.key == key)
                           .values(status=status, body=json.dumps(body, default=str)))


async def _release(db: Database, scope: str, key: str) -> None:
    async with db.read() as conn:
        await conn.execute(delete(keys).where(keys.c.scope == scope, keys.c.key == key, keys.c.status.is_(None)))


async def _sweep(db: Database) -> None:
    """Delete the expired rows, at most once every SWEEP_EVERY_S per process and database."""
    now = time.monotonic()
    if now - _last_sweep.get(db, float("-inf")) < SWEEP_EVERY_S:
        return
    _last_sweep[db] = now
    async with db.read() as conn:
        await conn.execute(delete(keys).where(keys.c.created_at < utcnow() - TTL))
