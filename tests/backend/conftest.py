"""Fixtures for the backend suite: an app per database backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

BACKEND = Path(__file__).resolve().parents[2] / "app" / "backend"
COMMON = BACKEND.parent / "common"  # todo_serving, which both apps import
if str(BACKEND) not in sys.path:
    sys.path.insert(0, str(BACKEND))

from todo_api.migrations import upgrade
from todo_api.server import create_app
from todo_api.settings import Settings, normalize_database_url

SECRET = "test-secret-0123456789abcdef-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_pg_database(postgres_url: str, prefix: str = "todo_api_t") -> str:
    """Create a fresh database next to TEST_DATABASE_URL's and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    return f"{base}/{name}"


def drop_pg_database(postgres_url: str, url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    postgres_url = request.getfixturevalue("postgres_url")
    url = create_pg_database(postgres_url)
    upgrade(normalize_database_url(url))
    yield url
    drop_pg_database(postgres_url, url)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once; each test gets a copy (a copy takes a millisecond,
    running the migrations ~0.1 s, for hundreds of tests)."""
    path = tmp_path_factory.mktemp("migrated") / "todo.db"
    upgrade(f"sqlite:///{path}")
    return path


def fresh_sqlite_url(migrated: Path, tmp_path: Path) -> str:
    target = tmp_path / "todo.db"
    shutil.copyfile(migrated, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return fresh_sqlite_url(request.getfixturevalue("migrated_sqlite"), tmp_path)
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def sqlite_url(migrated_sqlite: Path, tmp_path: Path) -> str:
    return fresh_sqlite_url(migrated_sqlite, tmp_path)


# Throttling off unless a test asks for it: the suite signs many users up from one address.
GENEROUS = {"auth_failures_per_user": 10_000, "auth_failures_per_address": 10_000, "signups_per_address": 10_000}


# argon2id at its floor (8 MiB, one pass: ~8 ms a hash instead of ~40 ms): hundreds of
# sign-ups and sign-ins. The defaults are tested as such (test_argon2_parameters_are_owasps_minimum).
CHEAP_HASHING = {"password_hash_memory_kib": 8_192, "password_hash_time_cost": 1}


def make_settings(db_url: str, **extra: Any) -> Settings:
    return Settings(auth_secret=SECRET, database_url=db_url, llm_provider="offline",
                    **{**GENEROUS, **CHEAP_HASHING, **extra})


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_url))) as c:
        yield c


@pytest.fixture
def sqlite_client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(sqlite_url))) as c:
        yield c


class User:
    def __init__(self, user_id: int, username: str, token: str) -> None:
        self.id = user_id
        self.username = username
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}


def signup(client: Any, name: str | None = None, password: str = "correct-horse-1") -> User:
    username = name or f"u{uuid.uuid4().hex[:12]}"
    r = client.post("/api/auth/signup", json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    body = r.json()
    return User(body["user_id"], body["username"], body["token"])


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTH_SECRET", "DATABASE_URL", "LLM_PROVIDER")}
    env["PYTHONPATH"] = os.pathsep.join([str(BACKEND), str(COMMON), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def start_server(db_url: str, **extra: str) -> tuple[subprocess.Popen[str], int]:
    """Run `python -m todo_api` in a subprocess and wait for /started."""
    import httpx

    port = free_port()
    limits = {k.upper(): str(v) for k, v in GENEROUS.items()}
    env = subprocess_env(AUTH_SECRET=SECRET, DATABASE_URL=db_url, PORT=str(port), LLM_PROVIDER="offline",
                         **{**limits, **extra})
    proc = subprocess.Popen(
        [sys.executable, "-m", "todo_api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/started", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")
