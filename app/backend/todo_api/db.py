"""Database engines.

The request path is asynchronous end to end: an async engine (psycopg's asyncio mode on
PostgreSQL, aiosqlite on SQLite) whose connections run in autocommit, so a read is one
round trip (no pre-ping, no BEGIN/ROLLBACK around it). Work that needs a transaction
asks for `Database.write()`. The synchronous `make_engine` is for migrations and
one-off scripts (e.g. the verify stage's cleanup inside a backend pod).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

DB_UNAVAILABLE = "The database is unavailable, try again shortly"
# A pooled connection idle this long is pinged before use (no pre-ping otherwise): a
# serverless database closes its connections when it scales to zero, a NAT after minutes.
IDLE_PING_SECONDS = 60.0


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

    def __init__(self, url: str, pool_size: int = 10, pool_timeout: float = 2) -> None:
        url = async_url(url)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            engine = create_async_engine(
                url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=0,
                pool_timeout=pool_timeout, connect_args={"timeout": 5},
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
            )
            transactional = "READ COMMITTED"
            ping_after_idle(engine.sync_engine, IDLE_PING_SECONDS)
        self.engine: AsyncEngine = engine
        self._tx_engine = engine.execution_options(isolation_level=transactional)

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
