"""Drill: bad input is a 4xx from the real backend on PostgreSQL, never a 5xx (issue 19, item 7).

- NUL in a chat message, a username, a title, a description or a password: 422, never the
  503 "database unavailable" PostgreSQL's refusal of NUL used to become.
- Bidirectional controls (right-to-left overrides, isolates, marks) are refused in every
  string a client sends.
- A client that sends half a body and goes away is no 500 in the backend's log.
- 20 concurrent POSTs with one Idempotency-Key make exactly one task; a reused key with
  another body is a 422.
- JSON nested 30,000 deep and a number like 1e999999 are 4xx.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.client import ApiUser, signup
from tests.drills.local_apps import LocalApp, postgres_database, start_backend

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def backend(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    with postgres_database(postgres_url, "badinput") as url:
        # INFO: the access log (one line per request, with its status) is what the disconnect drill reads.
        app = start_backend(tmp_path_factory.mktemp("bad-input"), DATABASE_URL=url, LOG_LEVEL="INFO",
                            SIGNUPS_PER_ADDRESS="10000", SIGNUPS_PER_ADDRESS_PER_HOUR="10000")
        try:
            yield app
        finally:
            app.stop()


@pytest.fixture
def user(backend: LocalApp) -> ApiUser:
    return signup(backend.url)


def _post(user: ApiUser, rest: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{user.base_url}{user.path(rest)}", json=body, headers={**user.headers, **headers},
                      timeout=30)


def _assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text[:300])
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}: ") and "control characters" in detail, detail


def _log_records(app: LocalApp) -> list[dict[str, Any]]:
    records = []
    for line in app.log.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


NUL = "nul \x00 here"


def test_nul_in_chat_message_is_a_422_not_a_503(user: ApiUser) -> None:
    _assert_refused(_post(user, "chat", {"message": f"add task {NUL}"}), "message")


def test_nul_in_title_and_description_is_a_422(user: ApiUser) -> None:
    _assert_refused(_post(user, "tasks", {"title": NUL}), "title")
    _assert_refused(_post(user, "tasks", {"title": "ok", "description": NUL}), "description")


def test_nul_in_usernames_and_passwords_is_a_422(backend: LocalApp) -> None:
    auth = f"{backend.url}/api/auth"
    login = httpx.post(f"{auth}/login", json={"username": f"ann{NUL}", "password": "whatever-1"}, timeout=30)
    assert login.status_code == 422 and login.json()["detail"].startswith("username: "), login.text
    signup_ = httpx.post(f"{auth}/signup", json={"username": f"ann{NUL}", "password": "whatever-1"}, timeout=30)
    assert signup_.status_code == 422 and signup_.json()["detail"].startswith("username: "), signup_.text
    name = f"nul{uuid.uuid4().hex[:10]}"
    password = httpx.post(f"{auth}/signup", json={"username": name, "password": f"long-enough{NUL}"}, timeout=30)
    assert password.status_code == 422, password.text
    assert password.json()["detail"] == "password: must not contain the NUL character"


BIDI = {"rlo": "\u202e", "lre": "\u202a", "rli": "\u2067", "pdi": "\u2069", "rlm": "\u200f", "alm": "\u061c"}


@pytest.mark.parametrize("char", BIDI.values(), ids=BIDI.keys())
def test_bidi_controls_are_refused_everywhere(backend: LocalApp, user: ApiUser, char: str) -> None:
    _assert_refused(_post(user, "tasks", {"title": f"invoice{char}fdp.exe"}), "title")
    _assert_refused(_post(user, "tasks", {"title": "ok", "description": f"a{char}b"}), "description")
    task = _post(user, "tasks", {"title": "plain"})
    assert task.status_code == 201
    number = task.json()["id"]
    update = httpx.put(f"{user.base_url}{user.path(f'tasks/{number}')}", json={"title": f"x{char}"},
                       headers=user.headers, timeout=30)
    _assert_refused(update, "title")
    _assert_refused(_post(user, "chat", {"message": f"add task {char}gnp.js"}), "message")
    login = httpx.post(f"{backend.url}/api/auth/login", json={"username": f"ann{char}", "password": "x" * 8},
                       timeout=30)
    _assert_refused(login, "username")
    listing = httpx.get(f"{user.base_url}{user.path('tasks')}", headers=user.headers, timeout=30).json()
    assert [t["title"] for t in listing["items"]] == ["plain"], "a refused value was stored"


def _half_a_body_then_gone(backend: LocalApp, user: ApiUser, path: str) -> None:
    host, port = backend.url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.token}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            "Content-Length: 400\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"title": "half a')
        time.sleep(0.3)  # the backend is waiting for the rest of the body


def test_a_client_that_disconnects_mid_body_is_no_500(backend: LocalApp, user: ApiUser) -> None:
    """Each is logged at info as a 499 ("client went away"). Before: the MCP endpoint logged an
    error (ClientDisconnect) and a 500; the REST routes a 400."""
    paths = [user.path("tasks"), user.path("chat"), "/api/auth/signup", "/mcp"]
    before = len(_log_records(backend))
    for path in paths:
        _half_a_body_then_gone(backend, user, path)
    health = httpx.get(f"{backend.url}/health", timeout=10)
    assert health.status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the log is written in batches
        records = _log_records(backend)[before:]
        access = {r["path"]: r for r in records if r.get("logger") == "todo_api.access" and r.get("path") in paths}
        if len(access) == len(paths):
            break
        time.sleep(0.2)
    assert not [r for r in records if r.get("status") == 500 or r.get("level") in ("error", "critical")], records
    assert {path: r.get("status") for path, r in access.items()} == dict.fromkeys(paths, 499), records
    assert sum(r.get("msg") == "client went away" for r in records) >= len(paths), records
    # Nothing was made of the half bodies.
    listing = httpx.get(f"{user.base_url}{user.path('tasks')}", headers=user.headers, timeout=30).json()
    assert listing["total"] == 0


async def _same_key_at_once(user: ApiUser, key: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=user.base_url, headers=user.headers, timeout=30) as client:
        return list(await asyncio.gather(*(
            client.post(user.path("tasks"), json={"title": "pay rent"}, headers={"Idempotency-Key": key})
            for _ in range(count))))


def test_an_idempotency_key_sent_20_times_at_once_makes_one_task(user: ApiUser) -> None:
    key = f"rent-{uuid.uuid4()}"
    responses = asyncio.run(_same_key_at_once(user, key, 20))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r.json() for r in responses if r.status_code == 201]
    assert created and all(body == created[0] for body in created), created
    in_progress = [r for r in responses if r.status_code == 409]
    assert all(r.headers.get("retry-after") for r in in_progress)
    # A retry after the dust settles gets the same task back, marked as a replay.
    again = _post(user, "tasks", {"title": "pay rent"}, **{"Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == created[0]
    assert again.headers.get("idempotent-replayed") == "true"
    listing = httpx.get(f"{user.base_url}{user.path('tasks')}", headers=user.headers, timeout=30).json()
    assert listing["total"] == 1, listing
    other = _post(user, "tasks", {"title": "pay more rent"}, **{"Idempotency-Key": key})
    assert other.status_code == 422 and other.json()["detail"] == "Idempotency-Key reused with a different request"


def test_a_retried_signup_with_its_key_makes_one_account(backend: LocalApp) -> None:
    body = {"username": f"idem{uuid.uuid4().hex[:10]}", "password": "correct-horse-9"}
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = httpx.post(f"{backend.url}/api/auth/signup", json=body, headers=headers, timeout=30)
    retry = httpx.post(f"{backend.url}/api/auth/signup", json=body, headers=headers, timeout=30)
    assert first.status_code == 201 and retry.status_code == 201, (first.text, retry.text)
    assert retry.json()["user_id"] == first.json()["user_id"]
    assert retry.headers.get("idempotent-replayed") == "true"
    session = httpx.get(f"{backend.url}/api/auth/session", timeout=30,
                        headers={"Authorization": f"Bearer {retry.json()['token']}"})
    assert session.status_code == 200 and session.json()["username"] == body["username"]
    other = httpx.post(f"{backend.url}/api/auth/signup", json={**body, "password": "another-pass-1"},
                       headers=headers, timeout=30)
    assert other.status_code == 422


@pytest.mark.parametrize("key", ["", "x" * 129, "caf\u00e9"], ids=["empty", "long", "non-ascii"])
def test_a_malformed_idempotency_key_is_a_400(user: ApiUser, key: str) -> None:
    response = httpx.post(f"{user.base_url}{user.path('tasks')}", json={"title": "t"}, timeout=30,
                          headers=[*user.headers.items(), ("Idempotency-Key", key.encode("latin-1"))])
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" in response.json()["detail"]


@pytest.mark.parametrize("body", [b"[" * 30_000 + b"]" * 30_000, b'{"title": 1e999999}',
                                  b'{"title": "t", "description": -1e999999}'],
                         ids=["deep", "huge-number", "minus-huge"])
def test_deep_or_non_finite_json_is_a_4xx(user: ApiUser, body: bytes) -> None:
    response = httpx.post(f"{user.base_url}{user.path('tasks')}", content=body, timeout=30,
                          headers={**user.headers, "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert isinstance(response.json()["detail"], str)
