"""The list page's asyncpg path decides what a failure means: a lost connection is read
again once on a fresh one, a database that refuses is 503 and unreadiness, a busy pool
is 503 alone. A pool that fails on cue stands in for asyncpg's (its real use is in
test_readiness.py and test_external_database.py, against PostgreSQL)."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import asyncpg
import pytest

from todo_api.db import Database
from todo_api.security import Caller
from todo_api.task_pages import TaskPages, Unavailable

CALLER = Caller(user_id=7, token_version=2)
ROW = (2, '[{"id":1}]', 1)


class Outcomes:
    def __init__(self) -> None:
        self.failed_with: list[str] = []
        self.succeeded_count = 0

    def succeeded(self) -> None:
        self.succeeded_count += 1

    def failed(self, reason: str = "") -> None:
        self.failed_with.append(reason)


class Conn:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        answer = self.rows.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Pool:
    """acquire() hands out `conn` (or raises `refuse`); counts releases and expiries."""

    def __init__(self, conn: Conn, refuse: BaseException | None = None) -> None:
        self.conn, self.refuse = conn, refuse
        self.released = self.expired = 0

    def get_idle_size(self) -> int:
        return 1

    async def acquire(self, timeout: float | None = None) -> Conn:
        if self.refuse is not None:
            raise self.refuse
        return self.conn

    async def release(self, conn: Conn) -> None:
        self.released += 1

    async def expire_connections(self) -> None:  # asyncpg.Pool.expire_connections is a coroutine
        self.expired += 1


def pages(outcomes: Outcomes) -> TaskPages:
    tmp = tempfile.gettempdir()
    return TaskPages(Database(f"sqlite:///{tmp}/unused.db"), f"sqlite:///{tmp}/unused.db", 1, 1, outcomes=outcomes)


def fetch(pool: Pool, outcomes: Outcomes) -> bytes:
    return asyncio.run(pages(outcomes)._fast_page(pool, CALLER, "all", 50, 0))  # type: ignore[arg-type]


def test_a_connection_the_database_dropped_is_read_again_on_a_fresh_one() -> None:
    outcomes = Outcomes()
    pool = Pool(Conn([asyncpg.ConnectionDoesNotExistError("connection was closed"), ROW]))
    assert fetch(pool, outcomes) == b'{"items":[{"id":1}],"total":1,"limit":50,"offset":0}'
    assert (pool.expired, pool.released, outcomes.failed_with, outcomes.succeeded_count) == (1, 2, [], 1)


def test_a_second_loss_in_a_row_is_the_database_gone() -> None:
    outcomes = Outcomes()
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed")
    pool = Pool(Conn([lost, asyncpg.ConnectionDoesNotExistError("again")]))
    with pytest.raises(Unavailable):
        fetch(pool, outcomes)
    assert (pool.expired, pool.released, outcomes.failed_with) == (1, 2, ["a request could not reach the database"])


@pytest.mark.parametrize(("refusal", "unready"), [
    (asyncpg.CannotConnectNowError("the database system is starting up"), True),
    (asyncpg.ObjectNotInPrerequisiteStateError('database "x" is not currently accepting connections'), True),
    (ConnectionRefusedError(111, "Connection refused"), True),
    (TimeoutError(), False),  # every connection busy for pool_timeout: 503, still ready
])
def test_a_connection_that_cannot_be_had_is_a_503(refusal: BaseException, unready: bool) -> None:
    outcomes = Outcomes()
    pool = Pool(Conn([]), refuse=refusal)
    with pytest.raises(Unavailable):
        fetch(pool, outcomes)
    assert (bool(outcomes.failed_with), pool.released) == (unready, 0)


def test_a_wrong_statement_is_not_the_database_being_away() -> None:
    outcomes = Outcomes()
    pool = Pool(Conn([asyncpg.UndefinedTableError('relation "tasks" does not exist')]))
    with pytest.raises(asyncpg.UndefinedTableError):
        fetch(pool, outcomes)
    assert (pool.expired, pool.released, outcomes.failed_with) == (0, 1, [])
