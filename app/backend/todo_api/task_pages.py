"""A page of the task list as JSON, the backend's hottest path.

On PostgreSQL it is one round trip on a connection of psycopg's own asyncio pool (no
SQLAlchemy greenlet hops, which cost more than the query itself under a deep ASGI stack):
one statement checks the session (the token's version against the user's) and has the
database build the page's JSON, passed through untouched. A COUNT follows only when the
page is full or not the first. Elsewhere (SQLite: development and tests) it takes the
generic route through `tools.query_tasks`. Both give the same document.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Protocol

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api import tools
from todo_api.db import Database
from todo_api.security import Caller, session_is_current

# The page's rows become JSON objects with json_agg (row to JSON, the cheapest way for
# PostgreSQL to build it); the column aliases are the API's field names.
_PAGE_SQL = """
WITH page AS (
    SELECT number AS id, user_id, title, description, completed, created_at, updated_at FROM tasks
    WHERE user_id = %(uid)s AND (%(status)s = 'all' OR completed = (%(status)s = 'completed'))
    ORDER BY number DESC LIMIT %(limit)s OFFSET %(offset)s
)
SELECT u.token_version, p.items, p.n
FROM users u, (SELECT coalesce(json_agg(page ORDER BY id DESC), '[]')::text AS items, count(*) AS n FROM page) p
WHERE u.id = %(uid)s
"""


class Revoked(Exception):
    """The token's session has ended (or its user is gone)."""


_COUNT_SQL = ("SELECT count(*) FROM tasks WHERE user_id = %(uid)s "
              "AND (%(status)s = 'all' OR completed = (%(status)s = 'completed'))")


class Outcomes(Protocol):
    """Who hears whether the database answered (readiness.Readiness)."""

    def succeeded(self) -> None: ...
    def failed(self, reason: str = ...) -> None: ...


# Idle connections this old are tested (one round trip each) before a request takes one:
# a serverless database closes them when it scales to zero, a NAT after some minutes.
IDLE_CHECK_SECONDS = 60.0


def libpq_conninfo(url: str) -> str:
    """The URL (host, credentials, ?sslmode=…&channel_binding=…&sslrootcert=…) as libpq
    key=value pairs: rendered back to a URL, a space in a value would become '+', which
    libpq does not read back."""
    parsed = make_url(url)
    params: dict[str, object] = parsed.translate_connect_args(username="user", database="dbname")
    for key, value in parsed.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **params)


class TaskPages:
    """Serves list-tasks pages: psycopg's pool on PostgreSQL, the app's engine otherwise."""

    def __init__(self, db: Database, url: str, pool_size: int, pool_timeout: float,
                 outcomes: Outcomes | None = None) -> None:
        self.db = db
        self.pool: AsyncConnectionPool | None = None
        self.outcomes = outcomes
        self._checking: asyncio.Task[None] | None = None
        self._used_at = time.monotonic()
        if not db.is_sqlite:
            conninfo = libpq_conninfo(url)
            self.pool = AsyncConnectionPool(
                conninfo, min_size=pool_size, max_size=pool_size, timeout=pool_timeout, open=False,
                kwargs={"autocommit": True, "connect_timeout": 3}, name="task-pages",
            )

    async def open(self) -> None:
        if self.pool is not None:
            await self.pool.open(wait=False)  # connects in the background; a dead DB means 503s, not no start

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def page(self, caller: Caller, status: str, limit: int, offset: int) -> bytes:
        """The list-tasks response body; raises Revoked when the caller's session has ended."""
        if self.pool is None:
            async with self.db.read() as conn:
                return await _generic_page(conn, caller, status, limit, offset)
        params = {"uid": caller.user_id, "status": status, "limit": limit, "offset": offset}
        now, idle_since = time.monotonic(), self._used_at
        self._used_at = now
        if now - idle_since > IDLE_CHECK_SECONDS or self._checking:
            # After a quiet spell, test the pooled connections first (all of them, once)
            # rather than fail a request on each one the database has closed meanwhile.
            self._checking = self._checking or asyncio.create_task(self._check())
            await asyncio.shield(self._checking)
        try:
            body = await self._page(self.pool, caller, params, limit, offset)
        except Revoked:
            if self.outcomes is not None:
                self.outcomes.succeeded()
            raise
        except psycopg.OperationalError as exc:
            if self.outcomes is not None and not isinstance(exc, psycopg.errors.QueryCanceled):
                self.outcomes.failed("a request could not reach the database")
            # A dead connection (the database restarted): have the pool test its idle ones
            # now, so the other stale ones are replaced instead of failing a request each.
            self._checking = self._checking or asyncio.create_task(self._check())
            raise
        if self.outcomes is not None:
            self.outcomes.succeeded()
        return body

    async def _check(self) -> None:
        try:
            if self.pool is not None:
                await self.pool.check()
        finally:
            self._checking = None

    @staticmethod
    async def _page(pool: AsyncConnectionPool, caller: Caller, params: dict[str, object], limit: int,
                    offset: int) -> bytes:
        async with pool.connection() as conn:
            row = await (await conn.execute(_PAGE_SQL, params)).fetchone()
            if row is None or row[0] != caller.token_version:
                raise Revoked
            items, count = row[1], int(row[2])
            if offset == 0 and count < limit:
                return _document(items, count, limit, offset)
            counted = await (await conn.execute(_COUNT_SQL, params)).fetchone()
            return _document(items, int(counted[0]) if counted else count, limit, offset)


async def _generic_page(conn: AsyncConnection, caller: Caller, status: str, limit: int, offset: int) -> bytes:
    if not await session_is_current(conn, caller):
        raise Revoked
    page, total = await tools.query_tasks(conn, caller.user_id, status, limit=limit, offset=offset)
    return _document(json.dumps(page, separators=(",", ":")), total, limit, offset)


def _document(items: str, total: int, limit: int, offset: int) -> bytes:
    return f'{{"items":{items},"total":{total},"limit":{limit},"offset":{offset}}}'.encode()
