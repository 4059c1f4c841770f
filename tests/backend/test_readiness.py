"""/ready answers from the requests' own query outcomes and probes the database at most
every DB_PROBE_SECONDS while all is well: an idle pod lets a serverless database sleep,
and a database that fails under traffic turns /ready 503 within seconds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from conftest import create_pg_database, drop_pg_database, make_settings, signup, start_server
from todo_api.migrations import upgrade
from todo_api.readiness import Readiness
from todo_api.server import create_app
from todo_api.settings import normalize_database_url

HEAD = "0002"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDatabase:
    """A probe that counts its calls and answers (or fails) as told."""

    def __init__(self) -> None:
        self.calls = 0
        self.revision: str | None = HEAD
        self.error: Exception | None = None
        self.delay = 0.0

    async def probe(self) -> str | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return self.revision


def readiness(db: FakeDatabase, clock: Clock, interval: float = 60, timeout: float = 1.5) -> Readiness:
    return Readiness(db.probe, HEAD, interval, timeout, clock=clock)


def test_idle_probes_at_most_once_per_interval() -> None:
    db, clock = FakeDatabase(), Clock()
    ready = readiness(db, clock)

    async def kubelet() -> list[bool]:
        seen = []
        for _ in range(36):  # three minutes of probes every 5 s
            seen.append((await ready.check()).ready)
            clock.now += 5
        return seen

    assert asyncio.run(kubelet()) == [True] * 36
    assert db.calls == 3  # at 0 s, 60 s, 120 s


def test_a_failed_query_makes_it_unready_at_once_and_a_probe_brings_it_back() -> None:
    db, clock = FakeDatabase(), Clock()
    ready = readiness(db, clock)
    from sqlalchemy.exc import OperationalError

    async def scenario() -> None:
        assert (await ready.check()).ready and db.calls == 1
        ready.failed("Connection refused")  # a request's query could not reach it
        db.error = OperationalError("SELECT 1", {}, Exception("Connection refused"))
        verdict = await ready.check()  # unready: probes now, not in a minute
        assert (verdict.ready, verdict.detail, db.calls) == (False, "database unreachable: Connection refused", 2)
        assert not (await ready.check()).ready and db.calls == 3  # and again at every call
        db.error = None
        assert (await ready.check()).ready and db.calls == 4
        clock.now += 30
        assert (await ready.check()).ready and db.calls == 4  # well again: back to the interval
        ready.failed()
        ready.succeeded()  # a later query worked: no need to ask the database
        assert (await ready.check()).ready and db.calls == 4

    asyncio.run(scenario())


def test_schema_behind_head_is_unready_until_migrated() -> None:
    db, clock = FakeDatabase(), Clock()
    db.revision = "0001"
    ready = readiness(db, clock)

    async def scenario() -> None:
        verdict = await ready.check()
        assert not verdict.ready and "schema is at 0001, expected 0002" in verdict.detail
        ready.succeeded()  # queries working says nothing about the schema
        assert not (await ready.check()).ready
        db.revision = HEAD
        assert (await ready.check()).ready

    asyncio.run(scenario())


def test_concurrent_calls_share_one_probe_and_a_hung_database_times_out() -> None:
    db, clock = FakeDatabase(), Clock()
    db.delay = 0.05  # the shared probe's answer; the hung database's timeout is scaled down too
    ready = readiness(db, clock, timeout=0.2)

    async def scenario() -> None:
        verdicts = await asyncio.gather(*(ready.check() for _ in range(20)))
        assert all(v.ready for v in verdicts) and db.calls == 1
        clock.now += 61
        db.delay = 5
        started = time.monotonic()
        verdict = await ready.check()
        assert time.monotonic() - started < 1
        assert verdict.detail == "database unreachable: no answer within 0.2 s"

    asyncio.run(scenario())


def test_a_probe_does_not_overwrite_a_newer_query_outcome() -> None:
    db, clock = FakeDatabase(), Clock()
    db.delay = 0.1
    ready = readiness(db, clock)

    async def scenario() -> None:
        probing = asyncio.ensure_future(ready.check())
        await asyncio.sleep(0.02)
        ready.failed("server closed the connection unexpectedly")  # while the probe runs
        await probing
        assert ready.verdict().detail == "database unreachable: server closed the connection unexpectedly"

    asyncio.run(scenario())


# --- against PostgreSQL: round trips counted by the server ---------------------------

@pytest.fixture
def fresh_db(postgres_url: str) -> Iterator[str]:
    url = create_pg_database(postgres_url, prefix="todo_api_ready")
    upgrade(normalize_database_url(url))
    yield url
    drop_pg_database(postgres_url, url)


class Counters:
    """What the server counted for one database: client sessions opened, and scans of its
    tables (every query of the app reads one; the probe reads alembic_version). Not its
    transactions: autovacuum's visits add to those. Read on one connection of our own."""

    def __init__(self, url: str) -> None:
        self.name = url.rpartition("/")[2]
        self.conn = psycopg.connect(url, autocommit=True)

    def read(self) -> tuple[int, int, int]:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            "SELECT (SELECT sessions FROM pg_stat_database WHERE datname = current_database()),"
            " (SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_user_tables),"
            " (SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'alembic_version')").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def settled(self) -> tuple[int, int, int]:
        """Once the app's backends have flushed their counters (within ~1 s of idling)."""
        last, deadline = self.read(), time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(1.2)
            now = self.read()
            if now == last:
                return now
            last = now
        return last


def test_idle_readiness_costs_the_database_one_connection_and_statement_a_minute(fresh_db: str) -> None:
    app = create_app(make_settings(fresh_db))
    clock = Clock()
    app.state.readiness.clock = clock
    counters = Counters(fresh_db)
    try:
        with TestClient(app) as client:
            assert client.get("/ready").status_code == 200  # the first probe
            sessions, scans, probes = counters.settled()
            answers = []
            for _ in range(11):  # the kubelet, every 5 s, for the rest of the minute
                clock.now += 5
                answers.append(client.get("/ready").status_code)
            assert answers == [200] * 11
            assert counters.settled() == (sessions, scans, probes)  # not one round trip
            for _ in range(12):  # the next minute: one probe (a session, one statement)
                clock.now += 5
                answers.append(client.get("/ready").status_code)
            assert answers == [200] * 23
            assert counters.settled() == (sessions + 1, scans + 1, probes + 1)
            assert app.state.readiness.probes == 2
    finally:
        counters.conn.close()


def _cut(postgres_url: str, name: str, allow: bool) -> None:
    """Take one database away (no new connections, the open ones terminated) or give it back:
    what a crashed or suspended server looks like to the app, without touching the others."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s", (name,))


class Watch(threading.Thread):
    """Polls /ready and /health every 0.1 s, recording (time, ready status, health status)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.seen: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as http:
            while not self.stop.is_set():
                self.seen.append((time.monotonic(), http.get("/ready").status_code, http.get("/health").status_code))
                time.sleep(0.1)

    def first(self, status: int, after: float) -> float | None:
        return next((t - after for t, ready, _ in self.seen if t >= after and ready == status), None)


def _traffic(base: str, user: Any, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers=user.headers, timeout=5) as http:
        while not stop.is_set():
            http.get(f"/api/{user.id}/tasks")
            http.post(f"/api/{user.id}/tasks", json={"title": "busy"})
            time.sleep(0.05)


def test_database_lost_under_traffic_turns_ready_503_within_seconds(postgres_url: str, fresh_db: str) -> None:
    name = fresh_db.rpartition("/")[2]
    proc, port = start_server(fresh_db, DB_PROBE_SECONDS="60")
    base = f"http://127.0.0.1:{port}"
    stop, watch = threading.Event(), Watch(base)
    try:
        with httpx.Client(base_url=base) as http:
            user = signup(http)
        traffic = threading.Thread(target=_traffic, args=(base, user, stop), daemon=True)
        traffic.start()
        watch.start()
        time.sleep(2)
        assert watch.seen and all(ready == 200 for _, ready, _ in watch.seen)
        cut_at = time.monotonic()
        _cut(postgres_url, name, allow=False)
        deadline = cut_at + 15
        while watch.first(503, cut_at) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        unready_after = watch.first(503, cut_at)
        assert unready_after is not None and unready_after < 5, unready_after
        back_at = time.monotonic()
        _cut(postgres_url, name, allow=True)
        deadline = back_at + 15
        while watch.first(200, back_at) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        ready_after = watch.first(200, back_at)
        assert ready_after is not None and ready_after < 5, ready_after
        print(f"unready {unready_after:.2f} s after the database went away; ready {ready_after:.2f} s after it came back")
    finally:
        stop.set()
        watch.stop.set()
        watch.join(10)
        proc.terminate()
        proc.wait(20)
        _cut(postgres_url, name, allow=True)
    assert all(health == 200 for _, _, health in watch.seen)  # liveness never depends on the database


def test_idle_pod_notices_a_lost_database_within_the_probe_interval(postgres_url: str, fresh_db: str) -> None:
    name = fresh_db.rpartition("/")[2]
    proc, port = start_server(fresh_db, DB_PROBE_SECONDS="5")
    base = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(f"{base}/ready").status_code == 200
        cut_at = time.monotonic()
        _cut(postgres_url, name, allow=False)
        statuses: list[tuple[float, int]] = []
        while time.monotonic() < cut_at + 8:
            statuses.append((time.monotonic() - cut_at, httpx.get(f"{base}/ready", timeout=5).status_code))
            time.sleep(0.25)
        first_503 = next(t for t, status in statuses if status == 503)
        # No query in between told it, and /ready did not ask the database at every call:
        # the probe due 5 s after the last one did.
        assert 4 <= first_503 <= 5.5, statuses
        detail = httpx.get(f"{base}/ready").json()["detail"]
        assert detail == f'database unreachable: FATAL:  database "{name}" is not currently accepting connections'
    finally:
        proc.terminate()
        proc.wait(20)
        _cut(postgres_url, name, allow=True)


def test_connections_the_database_closed_while_idle_cost_no_request(
        postgres_url: str, fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A serverless database that scaled to zero (or a NAT) closed the pooled connections:
    the first requests after the quiet spell still succeed, and /ready never flips."""
    import todo_api.db
    import todo_api.task_pages

    monkeypatch.setattr(todo_api.db, "IDLE_PING_SECONDS", 0.5)
    monkeypatch.setattr(todo_api.task_pages, "IDLE_CHECK_SECONDS", 0.5)
    name = fresh_db.rpartition("/")[2]
    app = create_app(make_settings(fresh_db))
    with TestClient(app) as client:
        user = signup(client)
        assert client.post(f"/api/{user.id}/tasks", json={"title": "before"}, headers=user.headers).status_code == 201
        assert client.get(f"/api/{user.id}/tasks", headers=user.headers).status_code == 200
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            closed = conn.execute("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                                  "WHERE datname = %s", (name,)).fetchone()
        assert closed is not None and closed[0] >= 2  # both pools' connections
        time.sleep(1)
        listed = client.get(f"/api/{user.id}/tasks", headers=user.headers)  # psycopg's pool
        made = client.post(f"/api/{user.id}/tasks", json={"title": "after"}, headers=user.headers)  # SQLAlchemy's
        assert (listed.status_code, made.status_code) == (200, 201), (listed.text, made.text)
        assert app.state.readiness.reachable is True
        assert client.get("/ready").status_code == 200


def test_a_restarted_database_costs_the_list_no_request(postgres_url: str, fresh_db: str) -> None:
    """Every pooled connection of the list page killed a moment after use (a database
    restart, not an idle spell): the next list request is still answered, on new ones."""
    app = create_app(make_settings(fresh_db, db_pool_size=3))
    with TestClient(app) as client:
        user = signup(client)
        for _ in range(3):
            assert client.get(f"/api/{user.id}/tasks", headers=user.headers).status_code == 200
        pages = app.state.task_pages
        before = client.portal.call(lambda: _backend_pids(pages.fast))
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = ANY(%s)", (before,))
        listed = client.get(f"/api/{user.id}/tasks", headers=user.headers)
        assert listed.status_code == 200, listed.text
        after = client.portal.call(lambda: _backend_pids(pages.fast))
        assert after and not set(after) & set(before), (before, after)
        assert app.state.readiness.reachable is True


async def _backend_pids(pool: Any) -> list[int]:
    async with pool.acquire() as conn:
        return [conn.get_server_pid()]
