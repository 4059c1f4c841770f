"""Sign-in and sign-up throttling: fixed windows of counted attempts per key, in the database
(so every replica sees the same counts and a restart forgets nothing).

An attempt is counted BEFORE it is checked: `acquire` takes one unit on each key of the attempt
with `INSERT ... ON CONFLICT DO UPDATE SET hits = hits + 1 WHERE <window expired or hits <
limit> RETURNING hits` -- the row lock serialises concurrent attempts on a key, so of N guesses
sent at once at most `limit` get a unit and go on to the password check, however they
interleave. A key that is full refuses without changing anything (and the units already taken
for that attempt are given back), so hammering a locked key never pushes a shared key (the
user's ceiling across addresses) up. Keys already full are refused from a plain read first: a
locked-out client costs one SELECT and no write. An attempt that turns out to succeed is
uncounted by the caller (`release`): the counts are failures plus attempts being checked.

Keys: `ua:<hash of user and address>` (sign-ins for one username from one address),
`user:<username>` (for one username from all addresses), `addr:<address>` (from one
address), `signup:<address>` and `signup-h:<address>` (sign-ups per window and per hour).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.models import auth_throttle, utcnow


def user_key(username: str) -> str:
    return "user:" + username.lower()[:80]


def user_at_address_key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.lower()}\0{address}".encode()).hexdigest()[:40]
    return "ua:" + digest  # fixed length: a username (64) and an address do not fit the column


def addr_key(address: str) -> str:
    return "addr:" + address[:80]


def signup_key(address: str) -> str:
    return "signup:" + address[:80]


def hourly_signup_key(address: str) -> str:
    return "signup-h:" + address[:80]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes


@dataclass(frozen=True)
class Limit:
    """At most `most` attempts per `window_seconds` on `key`; `what` names it to the client."""

    key: str
    most: int
    window_seconds: int
    what: str


@dataclass(frozen=True)
class Refusal:
    limit: Limit
    retry_after: int


class KeyTurns:
    """Attempts on the same key take turns in this process, in memory, before they ask the
    pool for a connection (the database serialises their writes on the key's row anyway).
    Without this a burst of sign-ins at one account asked the pool all at once: on a busy
    machine the queue outlasted the pool timeout, and everyone's requests waited behind it
    (503). Locks are taken in sorted key order (no two attempts wait on each other) and
    dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def turn(self, keys: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        try:
            async with AsyncExitStack() as held:
                for key in ordered:
                    await held.enter_async_context(self._locks[key])
                yield
        finally:
            for key in ordered:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]


@dataclass(frozen=True)
class Throttle:
    window_seconds: int  # the sign-in window (AUTH_WINDOW_SECONDS)
    turns: KeyTurns = field(default_factory=KeyTurns, compare=False, repr=False)

    def turn(self, limits: Sequence[Limit]) -> AbstractAsyncContextManager[None]:
        """Wait for this process's turn on the attempt's keys (see KeyTurns), then go to the
        database: `async with throttle.turn(limits), db.read() as conn: ...`."""
        return self.turns.turn(limit.key for limit in limits)

    async def acquire(self, conn: AsyncConnection, limits: Sequence[Limit]) -> Refusal | None:
        """Take one unit on every key, in the order given (tightest first); None when all were
        within their limits, else the refusal (and no unit stays taken)."""
        now = utcnow()
        current = await self._current(conn, [limit.key for limit in limits])
        full = [r for r in (self._refusal(limit, current.get(limit.key), now) for limit in limits) if r]
        if full:
            return max(full, key=lambda refusal: refusal.retry_after)
        taken: list[str] = []
        for limit in limits:
            if not await self._take(conn, limit, now):
                await self.release(conn, taken)
                row = (await self._current(conn, [limit.key])).get(limit.key)
                return self._refusal(limit, row, now) or Refusal(limit, 1)
            taken.append(limit.key)
        return None

    async def _current(self, conn: AsyncConnection, keys: list[str]) -> dict[str, tuple[int, datetime]]:
        rows = await conn.execute(
            select(auth_throttle.c.key, auth_throttle.c.hits, auth_throttle.c.window_start)
            .where(auth_throttle.c.key.in_(keys)))
        return {row.key: (row.hits, _aware(row.window_start)) for row in rows}

    @staticmethod
    def _refusal(limit: Limit, row: tuple[int, datetime] | None, now: datetime) -> Refusal | None:
        if row is None:
            return None
        hits, start = row
        ends = start + timedelta(seconds=limit.window_seconds)
        if hits < limit.most or ends <= now:
            return None
        return Refusal(limit, max(1, math.ceil((ends - now).total_seconds())))

    async def _take(self, conn: AsyncConnection, limit: Limit, now: datetime) -> bool:
        """One unit on `limit.key` if it has one left (one statement: atomic per key)."""
        expired = auth_throttle.c.window_start <= now - timedelta(seconds=limit.window_seconds)
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(auth_throttle).values(key=limit.key, window_start=now, hits=1)
        upsert = stmt.on_conflict_do_update(
            index_elements=[auth_throttle.c.key],
            set_={
                "hits": case((expired, 1), else_=auth_throttle.c.hits + 1),
                "window_start": case((expired, now), else_=auth_throttle.c.window_start),
            },
            where=or_(expired, auth_throttle.c.hits < limit.most),
        ).returning(auth_throttle.c.hits)
        return (await conn.execute(upsert)).first() is not None

    async def release(self, conn: AsyncConnection, keys: Sequence[str]) -> None:
        """Give back one unit on each key (never below zero). One row per statement: a
        statement never holds two rows' locks, so none can deadlock with another."""
        for key in keys:
            await conn.execute(
                update(auth_throttle).where(auth_throttle.c.key == key, auth_throttle.c.hits > 0)
                .values(hits=auth_throttle.c.hits - 1)
            )

    async def clear(self, conn: AsyncConnection, key: str) -> None:
        await conn.execute(delete(auth_throttle).where(auth_throttle.c.key == key))
