"""A page of the task list as JSON, the backend's hottest path.

On PostgreSQL it is one round trip on a pooled connection: one statement checks the session
(the token's version against the user's) and has the database build the page's JSON, passed
through untouched. A COUNT follows only when the page is full or not the first. The pool is
asyncpg's: its protocol is compiled and keeps the socket registered with the event loop, so
a round trip costs the backend about a third of the CPU psycopg's asyncio mode does (which
adds and removes a reader on every wait), and this round trip is most of what a list request
costs beyond the ASGI stack every request shares. A URL that asks for channel binding keeps
psycopg's pool: asyncpg's SCRAM never binds the channel. Elsewhere (SQLite: development and
tests) the page takes the generic route through `tools.query_tasks`. All give the same document.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Protocol
from urllib.parse import quote, urlencode

import asyncpg
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


_PARAMS = ("uid", "status", "limit", "offset")


def numbered(sql: str) -> str:
    """psycopg's %(name)s placeholders as asyncpg's $1, $2 ... (in _PARAMS order)."""
    for position, name in enumerate(_PARAMS, 1):
        sql = sql.replace(f"%({name})s", f"${position}")
    return sql


class Revoked(Exception):
    """The token's session has ended (or its user is gone)."""


class Unavailable(Exception):
    """The database did not answer (unreachable, restarting, or every connection busy)."""


_COUNT_SQL = ("SELECT count(*) FROM tasks WHERE user_id = %(uid)s "
              "AND (%(status)s = 'all' OR completed = (%(status)s = 'completed'))")
_PAGE_SQL_NUMBERED, _COUNT_SQL_NUMBERED = numbered(_PAGE_SQL), numbered(_COUNT_SQL)

# libpq options asyncpg reads the same way. Any other one (channel_binding=require above all,
# or sslrootcert=system, a libpq 16 keyword) keeps the page on psycopg, which hands it to libpq.
ASYNCPG_OPTIONS = frozenset({"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword",
                             "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs"})
CONNECT_TIMEOUT_SECONDS = 3.0
UNREACHED = "a request could not reach the database"  # what /ready says after such a failure

# What says the database is away rather than that the statement is wrong: connection
# failures (08), too many connections (53), shutting down or restarting (57), system
# errors (58), rejected credentials (28), no such database; and the socket's own errors.
_AWAY = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
         asyncpg.exceptions.InsufficientResourcesError, asyncpg.exceptions.OperatorInterventionError,
         asyncpg.exceptions.PostgresSystemError, asyncpg.exceptions.InvalidAuthorizationSpecificationError,
         asyncpg.exceptions.InvalidCatalogNameError)
_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.exceptions.AdminShutdownError, ConnectionError)


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
    params: dict[str, str | int | None] = parsed.translate_connect_args(username="user", database="dbname")
    for key, value in parsed.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **params)


def asyncpg_dsn(url: str) -> tuple[str, float] | None:
    """The URL as asyncpg reads it, with its connect timeout; None when it asks for a libpq
    option asyncpg does not have (the page then uses psycopg's pool)."""
    parsed = make_url(url)
    query = {key: value if isinstance(value, str) else value[-1] for key, value in parsed.query.items()}
    timeout = float(query.pop("connect_timeout", CONNECT_TIMEOUT_SECONDS))
    if query.get("channel_binding") in ("disable", "prefer"):
        del query["channel_binding"]  # asyncpg never binds, which these allow
    if set(query) - ASYNCPG_OPTIONS or query.get("sslrootcert") == "system":
        return None
    # Every part percent-encoded (SQLAlchemy's rendering leaves a space in a password as is).
    user = quote(parsed.username or "", safe="")
    auth = f"{user}:{quote(parsed.password, safe='')}@" if parsed.password else (f"{user}@" if user else "")
    host = f"[{parsed.host}]" if parsed.host and ":" in parsed.host else parsed.host or ""
    port = f":{parsed.port}" if parsed.port else ""
    dsn = f"postgresql://{auth}{host}{port}/{quote(parsed.database or '', safe='')}"
    return (f"{dsn}?{urlencode(query)}" if query else dsn), timeout


async def _keep_state(_: asyncpg.Connection) -> None:
    """asyncpg's pool resets each connection it takes back (a round trip: RESET ALL, UNLISTEN
    *, ...); the page's statements are reads in autocommit that change no session state."""


class TaskPages:
    """Serves list-tasks pages: asyncpg's pool on PostgreSQL (psycopg's for what asyncpg
    cannot connect with), the app's engine on SQLite."""

    def __init__(self, db: Database, url: str, pool_size: int, pool_timeout: float,
                 outcomes: Outcomes | None = None) -> None:
        self.db = db
        self.pool: AsyncConnectionPool | None = None
        self.fast: asyncpg.Pool | None = None
        self.pool_timeout = pool_timeout
        self.outcomes = outcomes
        self._checking: asyncio.Task[None] | None = None
        self._used_at = time.monotonic()
        self._fast_args = None if db.is_sqlite else asyncpg_dsn(url)
        self._fast_size = pool_size
        # The app engine's lock/statement/idle-in-transaction timeouts, SET on each new connection.
        self._session_statements = db.timeouts.statements()
        if self._fast_args is None and not db.is_sqlite:
            conninfo = libpq_conninfo(url)
            self.pool = AsyncConnectionPool(
                conninfo, min_size=pool_size, max_size=pool_size, timeout=pool_timeout, open=False,
                kwargs={"autocommit": True, "connect_timeout": 3}, name="task-pages",
                configure=self._configure,
            )

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        for statement in self._session_statements:
            await conn.execute(statement)

    async def _init_fast(self, conn: asyncpg.Connection) -> None:
        await conn.execute("; ".join(self._session_statements))

    async def open(self) -> None:
        if self._fast_args is not None:
            dsn, connect_timeout = self._fast_args
            # Made here, on the serving loop (asyncpg binds a pool to the loop it is made on).
            # It connects on first use (a dead database means 503s, not no start); a
            # connection idle longer than IDLE_CHECK_SECONDS is closed, not found dead later.
            self.fast = await asyncpg.create_pool(
                dsn, min_size=0, max_size=self._fast_size, timeout=connect_timeout, reset=_keep_state,
                init=self._init_fast, max_inactive_connection_lifetime=IDLE_CHECK_SECONDS)
        if self.pool is not None:
            await self.pool.open(wait=False)  # connects in the background; a dead DB means 503s, not no start

    async def close(self) -> None:
        if self.fast is not None:
            await self.fast.close()
        if self.pool is not None:
            await self.pool.close()

    async def page(self, caller: Caller, status: str, limit: int, offset: int) -> bytes:
        """The list-tasks response body; raises Revoked when the caller's session has ended,
        Unavailable (asyncpg) or psycopg's OperationalError when the database does not answer."""
        if self.fast is not None:
            return await self._fast_page(self.fast, caller, status, limit, offset)
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
            self._answered()
            raise
        except psycopg.OperationalError as exc:
            if self.outcomes is not None and not isinstance(exc, psycopg.errors.QueryCanceled):
                self.outcomes.failed(UNREACHED)
            # A dead connection (the database restarted): have the pool test its idle ones
            # now, so the other stale ones are replaced instead of failing a request each.
            self._checking = self._checking or asyncio.create_task(self._check())
            raise
        self._answered()
        return body

    async def _fast_page(self, pool: asyncpg.Pool, caller: Caller, status: str, limit: int,
                         offset: int) -> bytes:
        args = (caller.user_id, status, limit, offset)
        for attempt in (1, 2):
            # A connection is waited for only when none is idle: asyncpg's acquire with a
            # timeout runs in a task of its own, which the common case need not pay.
            timeout = None if pool.get_idle_size() else self.pool_timeout
            try:
                conn = await pool.acquire(timeout=timeout)
            except (OSError, asyncpg.PostgresError) as exc:  # could not connect, whatever the reason
                raise self._unavailable(exc) from exc
            try:
                row = await conn.fetchrow(_PAGE_SQL_NUMBERED, *args)
                if row is None or row[0] != caller.token_version:
                    self._answered()
                    raise Revoked
                items, count = row[1], int(row[2])
                if not (offset == 0 and count < limit):
                    count = int(await conn.fetchval(_COUNT_SQL_NUMBERED, *args[:2]))
            except _AWAY as exc:
                if attempt == 1 and isinstance(exc, _LOST):
                    # The database restarted or closed idle connections: the others in the
                    # pool are as dead as this one. Replace them all and read once more.
                    await pool.expire_connections()
                    continue
                raise self._unavailable(exc) from exc
            finally:
                await pool.release(conn)
            self._answered()
            return _document(items, count, limit, offset)
        raise AssertionError("unreachable")

    def _unavailable(self, exc: BaseException) -> Unavailable:
        # A timeout is a busy pool as often as an unreachable database: /ready's own probe
        # tells them apart. A cancelled statement is the statement's own fault.
        if self.outcomes is not None and not isinstance(exc, (TimeoutError, asyncpg.QueryCanceledError)):
            self.outcomes.failed(UNREACHED)
        return Unavailable(type(exc).__name__)

    def _answered(self) -> None:
        if self.outcomes is not None:
            self.outcomes.succeeded()

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
