"""Operations: migrations, probes, SIGTERM drain, JSON logs, metrics, configuration errors, DB outage."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from conftest import (
    SECRET,
    create_pg_database,
    drop_pg_database,
    free_port,
    make_settings,
    signup,
    start_server,
    subprocess_env,
)
from todo_api.migrations import head_revision, upgrade
from todo_api.server import create_app
from todo_api.settings import normalize_database_url


def test_migrations_idempotent_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert upgrade(url) == head_revision()
    assert upgrade(url) == head_revision()
    engine = create_engine(url)
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
        assert {"users", "tasks", "conversations", "messages", "alembic_version"} <= names
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_concurrent_migrate_processes_postgres(postgres_url: str) -> None:
    url = create_pg_database(postgres_url, prefix="todo_api_mig")
    try:
        env = subprocess_env(DATABASE_URL=url)
        procs = [
            subprocess.Popen([sys.executable, "-m", "todo_api", "migrate"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        for proc, (out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err
            assert f"revision {head_revision()}" in out
        again = subprocess.run([sys.executable, "-m", "todo_api", "migrate"], check=False, env=env, capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 0
        engine = create_engine(normalize_database_url(url))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
        engine.dispose()
    finally:
        drop_pg_database(postgres_url, url)


def test_ready_requires_migrations_and_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with TestClient(create_app(make_settings(url))) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/started").status_code == 200
        r = client.get("/ready")
        assert r.status_code == 503 and "migrate" in r.json()["detail"]
        upgrade(url)
        assert client.get("/ready").status_code == 200
    # an unreachable PostgreSQL: fast 503s, never a hang or a 500
    dead = f"postgresql+psycopg://todo:todo@127.0.0.1:{free_port()}/nope"
    with TestClient(create_app(make_settings(dead))) as client:
        assert client.get("/health").status_code == 200
        started = time.monotonic()
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["detail"] == "database unreachable: Connection refused"
        r = client.post("/api/auth/signup", json={"username": "someone", "password": "a-long-passphrase-9"})
        assert r.status_code == 503
        assert r.json() == {"detail": "The database is unavailable, try again shortly"}
        r = client.get("/api/1/tasks", headers={"Authorization": "Bearer x"})
        assert r.status_code == 401
        assert time.monotonic() - started < 15


def test_metrics_and_request_id(sqlite_client: TestClient) -> None:
    user = signup(sqlite_client)
    sqlite_client.get(f"/api/{user.id}/tasks", headers=user.headers)
    sqlite_client.get(f"/api/{user.id}/tasks/12345", headers=user.headers)
    r = sqlite_client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(sqlite_client.get("/health").headers["x-request-id"]) >= 16
    body = sqlite_client.get("/metrics").text
    assert 'todo_http_requests_total{method="GET",route="/api/{user_id}/tasks",status="200"}' in body
    assert 'route="/api/{user_id}/tasks/{task_id}",status="404"' in body
    assert "todo_http_request_duration_seconds_bucket" in body
    assert f"/api/{user.id}/tasks" not in body  # raw paths never become labels


def test_meta_is_public(sqlite_client: TestClient) -> None:
    r = sqlite_client.get("/api/meta")
    assert r.status_code == 200
    assert r.json()["agent"] == {"provider": "offline", "model": None} and r.json()["version"]
    assert r.json()["pod"] == socket.gethostname()  # which pod answered (todo_deploy.access.serving)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "AUTH_SECRET"),
        ({"AUTH_SECRET": "short"}, "AUTH_SECRET"),
        ({"AUTH_SECRET": SECRET, "PORT": "notaport"}, "PORT"),
        ({"AUTH_SECRET": SECRET, "LLM_PROVIDER": "magic"}, "LLM_PROVIDER"),
    ],
)
def test_bad_configuration_exits_2(env: dict[str, str], named: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "todo_api"], check=False, env=subprocess_env(**env),
                          capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert "short" not in proc.stderr  # never echo a secret's value
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sigterm_drains_then_exits_cleanly_and_logs_are_safe(sqlite_url: str) -> None:
    proc, port = start_server(sqlite_url, DRAIN_SECONDS="2")
    base = f"http://127.0.0.1:{port}"
    password = "super-secret-password-42"
    try:
        r = httpx.post(f"{base}/api/auth/signup", json={"username": "logcheck", "password": password})
        token = r.json()["token"]
        httpx.post(f"{base}/api/auth/login", json={"username": "logcheck", "password": password})
        httpx.get(f"{base}/api/{r.json()['user_id']}/tasks", headers={"Authorization": f"Bearer {token}",
                                                                        "X-Request-ID": "req-42"})
        assert httpx.get(f"{base}/ready").status_code == 200

        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        time.sleep(0.3)
        ready = httpx.get(f"{base}/ready")
        assert ready.status_code == 503 and "draining" in ready.json()["detail"]
        assert httpx.get(f"{base}/health").status_code == 200
        assert time.monotonic() - sent < 2  # still inside the drain window
        assert proc.poll() is None
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert time.monotonic() - sent >= 1.9
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every stdout line is JSON
    requests = [r for r in records if r.get("msg") == "request"]
    assert {"method", "path", "status", "duration_ms", "request_id"} <= set(requests[0])
    assert any(r["request_id"] == "req-42" and r["route"] == "/api/{user_id}/tasks" for r in requests)
    assert any(r["path"] == "/api/auth/login" and r["status"] == 200 for r in requests)
    assert password not in out + err and token not in out + err and SECRET not in out + err


def test_dev_command_generates_secret(tmp_path: Path) -> None:
    port = free_port()
    env = subprocess_env(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}")
    proc = subprocess.Popen([sys.executable, "-m", "todo_api", "dev"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.1)
        assert ok, "dev server did not become ready (migrations should have run)"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert "generated an ephemeral one" in out


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0002_on_existing_data(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Tasks get per-user numbers in id order; accounts that differ only in case keep working."""
    from alembic import command

    from todo_api.migrations import alembic_config

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        url = normalize_database_url(create_pg_database(postgres_url, prefix="todo_api_m2"))
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001_initial")
            conn.commit()
            now = "2026-01-01 00:00:00"
            for uid, name in [(1, "alice"), (2, "Alice"), (3, "bob"), (4, "ALICE")]:
                conn.execute(text("INSERT INTO users (id, username, password_hash, created_at) "
                                  "VALUES (:i, :n, 'x', :t)"), {"i": uid, "n": name, "t": now})
            for tid, uid in [(10, 1), (11, 3), (12, 1), (13, 2), (14, 1)]:
                conn.execute(text("INSERT INTO tasks (id, user_id, title, description, completed, created_at, "
                                  "updated_at) VALUES (:i, :u, :ti, '', false, :t, :t)"),
                             {"i": tid, "u": uid, "ti": f"t{tid}", "t": now})
            conn.commit()
        assert upgrade(url) == head_revision()
        with engine.connect() as conn:
            numbers = dict(conn.execute(text("SELECT id, number FROM tasks")).all())
            assert numbers == {10: 1, 12: 2, 14: 3, 11: 1, 13: 1}
            seqs = dict(conn.execute(text("SELECT id, task_seq FROM users")).all())
            assert seqs == {1: 3, 2: 1, 3: 1, 4: 0}
            names = dict(conn.execute(text("SELECT id, username FROM users")).all())
            assert names == {1: "alice", 2: "Alice-2", 3: "bob", 4: "ALICE-4"}
            with pytest.raises(Exception, match="(?i)unique"):
                conn.execute(text("INSERT INTO users (username, password_hash, created_at) "
                                  "VALUES ('BOB', 'x', '2026-01-01 00:00:00')"))
    finally:
        engine.dispose()
        if backend == "postgres":
            drop_pg_database(request.getfixturevalue("postgres_url"), url.replace("+psycopg", ""))
