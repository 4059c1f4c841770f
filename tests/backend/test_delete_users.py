"""`python -m todo_api delete-users NAME...`: the clean-up verify runs in a backend pod."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from tests.backend.conftest import create_pg_database, drop_pg_database, make_settings, signup, subprocess_env

from todo_api.migrations import upgrade
from todo_api.server import create_app
from todo_api.settings import normalize_database_url

OWNED = ("tasks", "conversations", "messages")


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    url = create_pg_database(postgres_url, prefix="todo_delete_users")
    upgrade(normalize_database_url(url))
    yield url
    drop_pg_database(postgres_url, url)


def counts(url: str, user_id: int) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        found = {table: conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s", (user_id,)).fetchone()[0]
                 for table in OWNED}
        found["users"] = conn.execute("SELECT count(*) FROM users WHERE id = %s", (user_id,)).fetchone()[0]
        found["idempotency_keys"] = conn.execute("SELECT count(*) FROM idempotency_keys WHERE scope = %s",
                                                 (f"user:{user_id}",)).fetchone()[0]
    return found


def delete_users(url: str, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "todo_api", "delete-users", *names], check=False,
                          env=subprocess_env(DATABASE_URL=url), capture_output=True, text=True, timeout=60)


def test_delete_users_removes_the_named_user_and_all_they_own_only(own_database: str) -> None:
    with TestClient(create_app(make_settings(own_database))) as client:
        gone, kept = signup(client), signup(client)
        for user in (gone, kept):
            for title in ("one", "two"):
                created = client.post(f"/api/{user.id}/tasks", json={"title": title},
                                      headers={**user.headers, "Idempotency-Key": f"k-{title}"})
                assert created.status_code == 201, created.text
            assert client.post(f"/api/{user.id}/chat", json={"message": "add a task to buy milk"},
                               headers=user.headers).status_code == 200
    before = counts(own_database, kept.id)
    assert all(before[table] > 0 for table in (*OWNED, "users", "idempotency_keys")), before
    assert all(count > 0 for count in counts(own_database, gone.id).values())

    done = delete_users(own_database, gone.username, "no-such-user")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1"
    assert counts(own_database, gone.id) == dict.fromkeys((*OWNED, "users", "idempotency_keys"), 0)
    assert counts(own_database, kept.id) == before


def test_delete_users_of_unknown_names_removes_nothing_and_says_0(own_database: str) -> None:
    done = delete_users(own_database, "nobody-here")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0"
