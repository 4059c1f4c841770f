"""Readiness from what the database really did, so the probes do not keep it awake.

Kubernetes asks every pod's /ready every few seconds. Querying the database each time
keeps a serverless PostgreSQL from ever scaling to zero (Neon suspends a compute after
minutes without a query). Instead /ready answers from the outcomes it already knows:

- the requests' own queries report success or failure as they happen (`watch`, and
  `TaskPages` for its own pool), so a database that fails under traffic turns /ready
  503 at its next call, and a success after a failure turns it back;
- while all is well, the database itself is probed at most every `interval` seconds:
  one new connection, one statement that also reads the schema revision (migrations at
  head), so an idle pod still finds out within `interval` that the database is gone;
- while something is wrong (a failed query or probe, the schema not at head), each
  /ready probes again, one probe at a time, so it recovers as soon as the database does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from todo_api.db import async_url, failure_cause

UNREACHABLE = "database unreachable"
log = logging.getLogger("todo_api")

Probe = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Verdict:
    ready: bool
    detail: str
    revision: str | None


class Readiness:
    """The database's last known state, and when to ask it again."""

    def __init__(self, probe: Probe, head: str | None, interval: float, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self.head = head
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.reachable: bool | None = None  # None: not known yet
        self.revision: str | None = None
        self.reason = ""
        self.probed_at: float | None = None
        self.probes = 0
        self._outcomes = 0  # bumped by every real outcome: a probe does not overwrite newer news
        self._inflight: asyncio.Task[None] | None = None
        self._told: Verdict | None = None  # the last verdict logged

    def succeeded(self) -> None:
        """A request's query worked."""
        self.reachable = True
        self._outcomes += 1

    def failed(self, reason: str = "a request could not reach the database") -> None:
        """A request's query failed for want of a database (not for its own fault)."""
        self.reachable = False
        self.reason = reason
        self._outcomes += 1

    def verdict(self) -> Verdict:
        if not self.reachable:
            return Verdict(False, f"{UNREACHABLE}: {self.reason}" if self.reason else UNREACHABLE, None)
        if self.revision != self.head:
            return Verdict(False, f"database schema is at {self.revision or 'no revision'}, expected "
                                  f"{self.head}: run 'python -m todo_api migrate'", self.revision)
        return Verdict(True, "ready", self.revision)

    def _due(self) -> bool:
        if self.probed_at is None or not self.verdict().ready:
            return True
        return self.clock() - self.probed_at >= self.interval

    async def check(self) -> Verdict:
        """The verdict, probing the database first when it is due."""
        if self._due():
            if self._inflight is None:
                self._inflight = asyncio.create_task(self._run_probe())
            # shielded: a caller that gives up does not cancel the probe the others await
            await asyncio.shield(self._inflight)
        verdict = self.verdict()
        if self._told is None or (verdict.ready, verdict.detail) != (self._told.ready, self._told.detail):
            # Once per change, so `kubectl logs` says why the pod is out of the Service.
            if verdict.ready:
                log.info("ready: database reachable, schema at %s", verdict.revision)
            else:
                log.warning("not ready: %s", verdict.detail)
            self._told = verdict
        return verdict

    async def _run_probe(self) -> None:
        seen = self._outcomes
        try:
            self.probes += 1
            revision = await asyncio.wait_for(self._probe(), self.timeout)
        except TimeoutError:
            self._probed(seen, False, f"no answer within {self.timeout:g} s", None)
        except (SQLAlchemyError, OSError) as exc:
            self._probed(seen, False, failure_cause(exc), None)
        else:
            self._probed(seen, True, "", revision)
        finally:
            self._inflight = None

    def _probed(self, seen: int, reachable: bool, reason: str, revision: str | None) -> None:
        self.probed_at = self.clock()
        if reachable:
            self.revision = revision
        if self._outcomes == seen:  # no request reported anything newer meanwhile
            self.reachable, self.reason = reachable, reason


def watch(engine: AsyncEngine, readiness: Readiness) -> None:
    """Report every statement's outcome on `engine` to `readiness`."""

    def executed(*_: Any) -> None:
        readiness.succeeded()

    def errored(context: ExceptionContext) -> None:
        # No connection (could not connect) or a dropped one: the database is the
        # problem. A statement's own error (a constraint, a cancelled query) is not.
        if context.connection is None or context.is_disconnect:
            readiness.failed(failure_cause(context.original_exception))

    event.listen(engine.sync_engine, "after_cursor_execute", executed)
    event.listen(engine.sync_engine, "handle_error", errored)


def revision_probe(url: str, connect_timeout: int = 3) -> tuple[Probe, AsyncEngine]:
    """A probe that opens a new connection (a pooled one idle for a minute may be long
    closed by a serverless database or a NAT) and reads the schema revision in one
    statement; the engine is returned for disposal."""
    url = async_url(url)
    args: dict[str, Any] = {"timeout": 5} if url.startswith("sqlite") else {"connect_timeout": connect_timeout}
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=args)

    async def probe() -> str | None:
        async with engine.connect() as conn:
            try:
                return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            except DBAPIError as exc:
                if _missing_table(exc):
                    return None
                raise

    return probe, engine


def _missing_table(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc.orig)
