"""Drill: one backend process never holds more PostgreSQL connections than the connection
budget counts for it (todo_deploy/config/connection_budget.py: 2 x DB_POOL_SIZE + 1), however hard it
is pushed. The workflow refuses settings from that count; if the process held more, a release
the budget accepts would still run out of connections during a rollout.

The real backend on PostgreSQL with DB_POOL_SIZE=3, flooded by 48 clients at once (task lists
through the pages pool, creates and sign-in checks through the request pool, /ready probing
on its own connection), while another connection samples pg_stat_activity for the process's
database. The pools must fill (else the drill proved nothing) and never pass the count; no
request may fail for want of a connection ("too many clients"), only wait its turn or be told
the pool is busy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.client import ApiUser, signup
from tests.drills.local_apps import LocalApp, postgres_database, start_backend
from todo_deploy.config.connection_budget import Budget

POOL_SIZE = 3
CLIENTS = 48
FLOOD_S = 6.0
COUNTED = Budget(backend_replicas=1, pool_size=POOL_SIZE, max_connections=100).per_pod


@pytest.fixture
def backend(tmp_path: Path, postgres_url: str) -> Iterator[tuple[LocalApp, str]]:
    with postgres_database(postgres_url, "budget") as url:
        app = start_backend(tmp_path, DATABASE_URL=url, DB_POOL_SIZE=str(POOL_SIZE),
                            DB_POOL_TIMEOUT_SECONDS="5", SIGNUPS_PER_ADDRESS="1000",
                            SIGNUPS_PER_ADDRESS_PER_HOUR="1000")
        try:
            yield app, url
        finally:
            app.stop()


def sample_connections(postgres_url: str, database: str, stop: threading.Event) -> list[int]:
    """The database's client connections (this sampler's excluded), every 20 ms until `stop`."""
    counts = []
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                               "AND backend_type = 'client backend'", (database,)).fetchone()
            counts.append(int(row[0]) if row else 0)
            time.sleep(0.02)
    return counts


def flood(http: httpx.Client, user: ApiUser, until: float, n: int) -> list[tuple[int, str]]:
    """One client's requests until `until`: a list, a create, a session check, a /ready."""
    seen = []
    sends = [
        lambda: http.get(user.path("tasks"), params={"limit": 50}, headers=user.headers),
        lambda: http.post(user.path("tasks"), json={"title": f"t{n}"}, headers=user.headers),
        lambda: http.get("/api/auth/session", headers=user.headers),
        lambda: http.get("/ready"),
    ]
    i = n
    while time.monotonic() < until:
        response = sends[i % len(sends)]()
        seen.append((response.status_code, response.text[:200] if response.status_code >= 500 else ""))
        i += 1
    return seen


def test_a_flooded_backend_holds_at_most_its_counted_connections(
        backend: tuple[LocalApp, str], postgres_url: str) -> None:
    app, url = backend
    database = url.rpartition("/")[2]
    users = [signup(app.url) for _ in range(4)]
    stop = threading.Event()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    with httpx.Client(base_url=app.url, timeout=30, limits=limits) as http, \
            ThreadPoolExecutor(max_workers=CLIENTS + 1) as pool:
        sampler = pool.submit(sample_connections, postgres_url, database, stop)
        until = time.monotonic() + FLOOD_S
        clients = [pool.submit(flood, http, users[n % len(users)], until, n) for n in range(CLIENTS)]
        seen = [answer for client in clients for answer in client.result()]
        stop.set()
        counts = sampler.result()

    assert len(seen) > 200, len(seen)
    most_held = max(counts)
    print(f"{len(seen)} requests; connections: most_held {most_held}, counted {COUNTED}")
    assert most_held <= COUNTED, f"the process held {most_held} connections; the budget counts {COUNTED}"
    assert most_held >= COUNTED - 1, f"the pools never filled (most_held {most_held}): the drill proved nothing"
    wanting = [text for status, text in seen if status >= 500 and "busy" not in text.lower()]
    assert not wanting, wanting[:5]
    log = app.log.read_text(errors="replace")
    assert "too many clients" not in log
