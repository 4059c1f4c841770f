"""A hosted PostgreSQL's URL (Neon's: `?sslmode=require&channel_binding=require`, or
`sslmode=verify-full&sslrootcert=…`) works on every path: the settings, the request
engine, the task pages' pool (asyncpg's, or psycopg's where the URL asks for channel
binding), the readiness probe and the migrations.
Against the host PostgreSQL with TLS on (.ci/postgres.sh: a self-signed certificate)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.conftest import require

from conftest import create_pg_database, drop_pg_database, make_settings, signup, subprocess_env
from todo_api.db import Database
from todo_api.migrations import head_revision
from todo_api.readiness import revision_probe
from todo_api.server import create_app
from todo_api.settings import normalize_database_url
from todo_api.task_pages import TaskPages, asyncpg_dsn

NEON = {"sslmode": "require", "channel_binding": "require"}
ENCRYPTED = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def with_query(url: str, **params: str) -> str:
    return f"{url}?{urlencode(params)}"


@pytest.fixture(scope="module")
def server_cert(postgres_url: str) -> str:
    """The server's certificate (self-signed: its own root), once TLS is known to be on."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        ssl = conn.execute("SHOW ssl").fetchone()
        cert = conn.execute("SHOW ssl_cert_file").fetchone()
    require(bool(ssl and ssl[0] == "on"), "PostgreSQL with TLS on (ssl = on; .ci/postgres.sh turns it on)")
    assert cert is not None
    return str(cert[0])


@pytest.fixture(scope="module")
def plain_url(postgres_url: str, server_cert: str) -> Iterator[str]:
    """A fresh, unmigrated database on the TLS-enabled server, as a URL without options."""
    url = create_pg_database(postgres_url, prefix="todo_api_tls")
    yield url
    drop_pg_database(postgres_url, url)


def migrate(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "todo_api", "migrate"], env=subprocess_env(DATABASE_URL=url),
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_url_keeps_its_tls_options_on_every_path() -> None:
    url = "postgres://u:p%40ss@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb?" + urlencode(
        {**NEON, "sslrootcert": "/etc/ssl/certs/ISRG Root X1.pem"})
    normalized = normalize_database_url(url)
    assert normalized.startswith("postgresql+psycopg://") and normalized.endswith(url.split("/neondb", 1)[1])

    db = Database(normalized)
    _, args = db.engine.sync_engine.dialect.create_connect_args(db.engine.sync_engine.url)
    assert {k: args[k] for k in ("sslmode", "channel_binding", "sslrootcert", "password")} == {
        **NEON, "sslrootcert": "/etc/ssl/certs/ISRG Root X1.pem", "password": "p@ss"}

    pages = TaskPages(db, normalized, pool_size=1, pool_timeout=1)  # not opened: no connection
    assert pages.pool is not None
    info = conninfo_to_dict(pages.pool.conninfo)
    assert {k: info[k] for k in ("host", "dbname", "password", "sslmode", "channel_binding", "sslrootcert")} == {
        "host": "ep-cool-name-123456.eu-central-1.aws.neon.tech", "dbname": "neondb", "password": "p@ss",
        **NEON, "sslrootcert": "/etc/ssl/certs/ISRG Root X1.pem"}


def test_the_task_pages_driver_is_the_one_that_can_honour_the_url() -> None:
    base = "postgresql+psycopg://u:p%40ss%20w@db.example:6543/todo"
    assert asyncpg_dsn(base) == ("postgresql://u:p%40ss%20w@db.example:6543/todo", 3.0)
    dsn, timeout = asyncpg_dsn(base + "?" + urlencode(
        {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/my root.pem", "connect_timeout": "7"})) or ("", 0)
    assert timeout == 7.0 and dsn.startswith("postgresql://u:p%40ss%20w@db.example:6543/todo?")
    assert dict(parse_qsl(dsn.split("?", 1)[1])) == {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/my root.pem"}
    assert asyncpg_dsn(base + "?channel_binding=disable&sslmode=require") == (
        "postgresql://u:p%40ss%20w@db.example:6543/todo?sslmode=require", 3.0)
    # What asyncpg cannot do keeps psycopg's pool: channel binding, libpq-only keywords.
    for query in ({**NEON}, {"sslrootcert": "system", "sslmode": "verify-full"}, {"options": "-c search_path=x"}):
        assert asyncpg_dsn(base + "?" + urlencode(query)) is None, query
    db = Database(base)
    with_binding, without = TaskPages(db, f"{base}?{urlencode(NEON)}", 1, 1), TaskPages(db, base, 1, 1)
    assert with_binding.pool is not None and without.pool is None  # neither opened: no connection


def test_the_asyncpg_pool_keeps_the_tls_options(postgres_url: str, plain_url: str, server_cert: str) -> None:
    url = with_query(plain_url, sslmode="verify-full", sslrootcert=server_cert)
    assert migrate(url).returncode == 0
    app = create_app(make_settings(url))
    with TestClient(app) as client:
        user = signup(client)
        assert client.post(f"/api/{user.id}/tasks", json={"title": "t"}, headers=user.headers).status_code == 201
        assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 1
        pages = app.state.task_pages
        assert pages.fast is not None and pages.pool is None

        async def encrypted() -> bool:
            return bool(await pages.fast.fetchval(ENCRYPTED))

        assert client.portal.call(encrypted) is True


def test_neon_style_url_encrypts_every_connection(postgres_url: str, plain_url: str) -> None:
    url = with_query(plain_url, **NEON)
    done = migrate(url)
    assert done.returncode == 0, done.stderr
    assert f"revision {head_revision()}" in done.stdout

    app = create_app(make_settings(url))
    with TestClient(app) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        user = signup(client)  # the request engine
        made = client.post(f"/api/{user.id}/tasks", json={"title": "over TLS"}, headers=user.headers)
        assert made.status_code == 201, made.text
        listed = client.get(f"/api/{user.id}/tasks", headers=user.headers)  # psycopg's pool
        assert [t["title"] for t in listed.json()["items"]] == ["over TLS"]

        async def encrypted() -> list[bool]:
            async with app.state.db.read() as conn:
                engine = (await conn.execute(text(ENCRYPTED))).scalar()
            async with app.state.task_pages.pool.connection() as conn:
                row = await (await conn.execute(ENCRYPTED)).fetchone()
            return [engine, row[0]]

        assert client.portal.call(encrypted) == [True, True]
        # Seen from the server: every connection the app holds to its database is TLS.
        name = plain_url.rpartition("/")[2]
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = %s",
                (name,)).fetchall()
        assert len(rows) >= 2 and all(ssl for (ssl,) in rows), rows


def test_the_readiness_probe_uses_the_same_options(plain_url: str, server_cert: str) -> None:
    import asyncio

    url = normalize_database_url(with_query(plain_url, **NEON))
    assert migrate(url).returncode == 0

    async def probe_and_check() -> tuple[str | None, bool]:
        probe, engine = revision_probe(url)
        try:
            revision = await probe()
            async with engine.connect() as conn:
                return revision, bool((await conn.execute(text(ENCRYPTED))).scalar())
        finally:
            await engine.dispose()

    assert asyncio.run(probe_and_check()) == (head_revision(), True)


def test_channel_binding_without_tls_fails_with_the_drivers_reason(plain_url: str) -> None:
    url = with_query(plain_url, sslmode="disable", channel_binding="require")
    done = migrate(url)
    assert done.returncode == 1
    assert done.stderr == "migrate: cannot use the database: channel binding required, but SSL not in use\n"

    with TestClient(create_app(make_settings(url))) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {"detail": "database unreachable: channel binding required, but SSL not in use"}
        r = client.post("/api/auth/signup", json={"username": "someone", "password": "a-long-passphrase-9"})
        assert r.status_code == 503


def test_verify_full_against_the_servers_own_certificate(plain_url: str, server_cert: str, tmp_path: Path) -> None:
    # 127.0.0.1 is in the certificate's names (.ci/postgres.sh), so the host check passes too.
    url = with_query(plain_url, sslmode="verify-full", sslrootcert=server_cert)
    assert migrate(url).returncode == 0
    app = create_app(make_settings(url))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        user = signup(client)
        assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 0

    # Another root (a certificate of its own) does not vouch for the server: refused.
    other = tmp_path / "other-root.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=not-the-server", "-keyout", str(tmp_path / "other.key"), "-out", str(other)],
                   check=True, capture_output=True)
    done = migrate(with_query(plain_url, sslmode="verify-full", sslrootcert=str(other)))
    assert done.returncode == 1
    assert done.stderr.startswith("migrate: cannot use the database: SSL error: certificate verify failed"), done.stderr


def test_sslmode_require_on_the_sync_engine_too(plain_url: str) -> None:
    """`make_engine` (migrations, the verify stage's scripts) passes the options through."""
    import asyncio

    url = normalize_database_url(with_query(plain_url, **NEON))

    async def main() -> bool:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return bool((await conn.execute(text(ENCRYPTED))).scalar())
        finally:
            await engine.dispose()

    from todo_api.db import make_engine

    sync = make_engine(url)
    with sync.connect() as conn:
        assert conn.execute(text(ENCRYPTED)).scalar() is True
    sync.dispose()
    assert asyncio.run(main()) is True
