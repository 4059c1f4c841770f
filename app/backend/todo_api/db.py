"""Database engines.

The request path is asynchronous end to end: an async engine (psycopg's asyncio mode on
PostgreSQL, aiosqlite on SQLite) whose connections run in autocommit, so a read is one
round trip (no pre-ping, no BEGIN/ROLLBACK around it). Work that needs a transaction
asks for `Database.write()`. The synchronous `make_engine` is for migrations and
one-off scripts (e.g. the verify stage's cleanup inside a backend pod).

On PostgreSQL every pooled connection gets lock, statement and idle-in-transaction
timeouts (SET on connect, not startup options: poolers such as pgbouncer or Neon's
reject unknown startup parameters), so no request waits on a row lock or a runaway
statement for longer than that, and no forgotten transaction holds its locks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from todo_api.settings import Settings

DB_UNAVAILABLE = "The database is unavailable, try again shortly"
# A pooled connection idle this long is pinged before use (no pre-ping otherwise): a
# serverless database closes its connections when it scales to zero, a NAT after minutes.
IDLE_PING_SECONDS = 60.0
# The engine execution option that carries the per-user task quota to tools.add_task.
MAX_TASKS_OPTION = "todo_max_tasks_per_user"
MAX_TASKS_DEFAULT = 10_000


@dataclass(frozen=True, slots=True)
class SessionTimeouts:
    """PostgreSQL session settings for every pooled connection, in milliseconds (0: none)."""

    lock_ms: int = 2_000
    statement_ms: int = 10_000
    idle_in_transaction_ms: int = 10_000

    def statements(self) -> list[str]:
        return [f"SET lock_timeout = {int(self.lock_ms)}",
                f"SET statement_timeout = {int(self.statement_ms)}",
                f"SET idle_in_transaction_session_timeout = {int(self.idle_in_transaction_ms)}"]


def make_engine(url: str) -> Engine:
    """A synchronous engine (migrations, scripts)."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 5}, pool_pre_ping=True)
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2, pool_timeout=3,
                         connect_args={"connect_timeout": 3})


def failure_cause(exc: BaseException) -> str:
    """Why the driver failed, in its own first line (e.g. 'Connection refused', 'channel
    binding required, but SSL not in use'), without the server's address."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    # libpq: 'connection failed: connection to server at "host" (ip), port 5432 failed: <why>'
    return line.rsplit(" failed: ", 1)[-1][:300]


def async_url(url: str) -> str:
    """The asyncio driver for a URL: sqlite -> sqlite+aiosqlite; PostgreSQL keeps psycopg."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:"):]
    return url


class Database:
    """The app's async engine: `read()` (autocommit) and `write()` (one transaction)."""

    def __init__(self, url: str, pool_size: int = 10, pool_timeout: float = 2,
                 timeouts: SessionTimeouts | None = None, max_tasks_per_user: int = MAX_TASKS_DEFAULT) -> None:
        url = async_url(url)
        self.is_sqlite = url.startswith("sqlite")
        self.timeouts = timeouts or SessionTimeouts()
        options = {MAX_TASKS_OPTION: max_tasks_per_user}
        if self.is_sqlite:
            engine = create_async_engine(
                url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=0,
                pool_timeout=pool_timeout, connect_args={"timeout": 5}, execution_options=options,
            )
            transactional = "SERIALIZABLE"
        else:
            engine = create_async_engine(
                url,
                isolation_level="AUTOCOMMIT",
                # One connection per concurrent query this process serves; past that a
                # request waits pool_timeout at most, then answers 503 (never queues
                # until the client gives up).
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=pool_timeout,
                pool_recycle=1800,
                connect_args={"connect_timeout": 3},
                execution_options=options,
            )
            transactional = "READ COMMITTED"
            ping_after_idle(engine.sync_engine, IDLE_PING_SECONDS)
            set_on_connect(engine.sync_engine, self.timeouts.statements())
        self.engine: AsyncEngine = engine
        self._tx_engine = engine.execution_options(isolation_level=transactional)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        timeouts = SessionTimeouts(settings.db_lock_timeout_ms, settings.db_statement_timeout_ms,
                                   settings.db_idle_in_transaction_timeout_ms)
        return cls(settings.database_url, settings.db_pool_size, settings.db_pool_timeout_seconds,
                   timeouts=timeouts, max_tasks_per_user=settings.max_tasks_per_user)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit: each statement is its own transaction."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection inside one transaction: committed on success, else rolled back."""
        async with self._tx_engine.begin() as conn:
            yield conn

    def atomic(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """For one tool call that must be atomic: autocommit on PostgreSQL (where each such
        tool is one statement), a transaction on SQLite (where add_task takes two)."""
        return self.write() if self.is_sqlite else self.read()

    async def dispose(self) -> None:
        await self.engine.dispose()


def ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection that sat idle longer than `idle_seconds` when it is
    checked out; a dead one is replaced by a new connection (the request never sees it)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: the pool discards it and connects anew
            raise DisconnectionError(str(exc)) from exc


def set_on_connect(engine: Engine, statements: list[str]) -> None:
    """Run `statements` (SET ...) once on every new pooled connection, outside any
    transaction so that they stick."""

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        was = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            cursor = dbapi_connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
        finally:
            dbapi_connection.autocommit = was
