"""Sign-in and sessions: throttling, case-insensitive usernames, password policy, sign-out
that ends the session, argon2 parameters and bounded hashing. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.requests import Request

from conftest import CHEAP_HASHING, make_settings, signup
from todo_api.client_address import client_address
from todo_api.passwords import PasswordHashing, password_problem
from todo_api.server import create_app
from todo_api.settings import Settings

PASSWORD = "correct-horse-1"


@pytest.fixture
def strict(db_url: str) -> Iterator[TestClient]:
    """The shipped throttling limits (5 failures per user, 30 per address, 20 sign-ups)."""
    settings = make_settings(db_url, auth_failures_per_user=5, auth_failures_per_address=30,
                             signups_per_address=20)
    with TestClient(create_app(settings)) as client:
        reset_throttle(client)
        yield client


def reset_throttle(client: TestClient) -> None:
    """The PostgreSQL database is shared by the session's tests: start from no counts."""
    from sqlalchemy import delete

    from todo_api.models import auth_throttle

    async def clear() -> None:
        async with client.app.state.db.read() as conn:
            await conn.execute(delete(auth_throttle))

    client.portal.call(clear)  # type: ignore[union-attr]


def _name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


def test_thirty_wrong_passwords_then_the_right_one_is_refused_too(strict: TestClient) -> None:
    user = signup(strict, password=PASSWORD)
    statuses = []
    for _ in range(30):
        r = strict.post("/api/auth/login", json={"username": user.username, "password": "wrong-password-x"},
)
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    locked = strict.post("/api/auth/login", json={"username": user.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 300
    assert "try again in" in locked.json()["detail"]
    # Another account is not locked by this one's failures (the per-user key).
    other = signup(strict, password=PASSWORD)
    assert strict.post("/api/auth/login", json={"username": other.username, "password": PASSWORD}).status_code == 200


def test_the_username_key_ignores_case(strict: TestClient) -> None:
    user = signup(strict, password=PASSWORD)
    for i in range(5):
        name = [user.username.upper(), user.username.lower(), user.username.title()][i % 3]
        assert strict.post("/api/auth/login", json={"username": name, "password": "nope-nope-1"}).status_code == 401
    assert strict.post("/api/auth/login", json={"username": user.username, "password": PASSWORD}).status_code == 429


def test_failures_per_client_address_are_throttled(db_url: str) -> None:
    settings = make_settings(db_url, auth_failures_per_user=100, auth_failures_per_address=8)
    with TestClient(create_app(settings)) as client:
        reset_throttle(client)
        statuses = [client.post("/api/auth/login", json={"username": _name(), "password": "whatever-1"}).status_code
                    for _ in range(12)]
        assert statuses[:8] == [401] * 8 and set(statuses[8:]) == {429}, statuses


def test_signups_per_client_address_are_throttled(db_url: str) -> None:
    with TestClient(create_app(make_settings(db_url, signups_per_address=3))) as client:
        reset_throttle(client)
        statuses = [client.post("/api/auth/signup", json={"username": _name(), "password": PASSWORD}).status_code
                    for _ in range(5)]
        assert statuses == [201, 201, 201, 429, 429]


def test_a_successful_sign_in_resets_the_users_count(strict: TestClient) -> None:
    user = signup(strict, password=PASSWORD)
    for _ in range(4):
        strict.post("/api/auth/login", json={"username": user.username, "password": "wrong-password-x"})
    assert strict.post("/api/auth/login", json={"username": user.username, "password": PASSWORD}).status_code == 200
    for _ in range(4):
        r = strict.post("/api/auth/login", json={"username": user.username, "password": "wrong-password-x"})
        assert r.status_code == 401


def test_usernames_are_unique_case_insensitively(client: TestClient) -> None:
    name = "Al" + uuid.uuid4().hex[:8]
    alice = signup(client, name, PASSWORD)
    for variant in (name.lower(), name.upper()):
        r = client.post("/api/auth/signup", json={"username": variant, "password": PASSWORD})
        assert r.status_code == 409, r.text
    r = client.post("/api/auth/login", json={"username": name.upper(), "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user_id"] == alice.id and r.json()["username"] == name


@pytest.mark.parametrize(("password", "reason"), [
    ("12345678", "most common"),
    ("password1", "most common"),
    ("Sunshine!", "most common"),
    ("aaaaaaaaaaaa", "repeat"),
    ("short1", "at least 8"),
])
def test_password_policy(sqlite_client: TestClient, password: str, reason: str) -> None:
    r = sqlite_client.post("/api/auth/signup", json={"username": _name(), "password": password})
    assert r.status_code == 422 and reason in r.json()["detail"], r.text


def test_password_may_not_be_the_username(sqlite_client: TestClient) -> None:
    name = "walrus" + uuid.uuid4().hex[:6]
    for password in (name, name.upper(), name + "1"):
        r = sqlite_client.post("/api/auth/signup", json={"username": name, "password": password})
        assert r.status_code == 422 and "username" in r.json()["detail"], r.text
    assert password_problem("bob", "bob-is-a-fine-password-9") is None


def test_sign_out_ends_the_session_for_every_copy_of_the_token(client: TestClient) -> None:
    user = signup(client, password=PASSWORD)
    base = f"/api/{user.id}/tasks"
    assert client.post(base, json={"title": "before"}, headers=user.headers).status_code == 201
    assert client.get("/api/auth/session", headers=user.headers).json()["username"] == user.username
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204
    for method, path, body in [("GET", base, None), ("POST", base, {"title": "after"}),
                               ("GET", f"{base}/1", None), ("DELETE", f"{base}/1", None),
                               ("POST", f"/api/{user.id}/chat", {"message": "show my tasks"}),
                               ("GET", f"/api/{user.id}/conversations", None),
                               ("GET", "/api/auth/session", None), ("POST", "/api/auth/logout", None)]:
        r = client.request(method, path, json=body, headers=user.headers)
        assert r.status_code == 401, (method, path, r.text)
    fresh = client.post("/api/auth/login", json={"username": user.username, "password": PASSWORD}).json()
    items = client.get(base, headers={"Authorization": f"Bearer {fresh['token']}"}).json()["items"]
    assert [t["title"] for t in items] == ["before"]


def test_new_users_count_their_tasks_from_one(client: TestClient) -> None:
    first, second = signup(client), signup(client)
    for i in range(3):
        client.post(f"/api/{first.id}/tasks", json={"title": f"a{i}"}, headers=first.headers)
    created = client.post(f"/api/{second.id}/tasks", json={"title": "mine"}, headers=second.headers).json()
    assert created["id"] == 1
    assert client.get(f"/api/{second.id}/tasks/1", headers=second.headers).json()["title"] == "mine"
    assert client.get(f"/api/{first.id}/tasks/1", headers=first.headers).json()["title"] == "a0"
    client.delete(f"/api/{first.id}/tasks/3", headers=first.headers)
    # numbers are never reused: the next one is #4
    assert client.post(f"/api/{first.id}/tasks", json={"title": "a3"}, headers=first.headers).json()["id"] == 4


def test_argon2_parameters_are_owasps_minimum(sqlite_url: str) -> None:
    defaults = {name: Settings.model_fields[name].default for name in CHEAP_HASHING}  # not the suite's
    with TestClient(create_app(make_settings(sqlite_url, **defaults))) as client:
        encoded = asyncio.run(client.app.state.hashing.hash("some password"))
    assert encoded.startswith("$argon2id$") and "m=19456,t=2,p=1" in encoded


def test_hashing_never_runs_more_than_its_concurrency() -> None:
    """16 hashes at once: at most 2 run at a time, in 2 threads (so at most 2 x 19 MiB)."""
    hashing = PasswordHashing(memory_kib=19_456, time_cost=2, concurrency=2, wait_seconds=30)
    running = peak = 0
    threads: set[int] = set()
    lock = threading.Lock()

    class Counting(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
                threads.add(threading.get_ident())
            try:
                return super().hash(password, salt=salt)
            finally:
                with lock:
                    running -= 1

    hashing.hasher = Counting(time_cost=2, memory_cost=19_456, parallelism=1)

    async def burst() -> list[str]:
        return await asyncio.gather(*(hashing.hash(f"password {i}") for i in range(16)))

    try:
        hashes = asyncio.run(burst())
    finally:
        hashing.close()
    assert len(set(hashes)) == 16 and peak == 2 and len(threads) <= 2


def test_hashing_refuses_when_no_slot_frees_in_time(sqlite_client: TestClient) -> None:
    hashing = PasswordHashing(memory_kib=65_536, time_cost=3, concurrency=1, wait_seconds=0.01)

    async def burst() -> list[object]:
        return await asyncio.gather(*(hashing.hash("x") for _ in range(4)), return_exceptions=True)

    try:
        results = asyncio.run(burst())
    finally:
        hashing.close()
    assert any(type(r).__name__ == "HashingBusy" for r in results)


# ------------------------------------------------- client addresses (trusted proxies only)

PROXY_SECRET = "proxy-secret-0123456789abcdef"


def _request(peer: str, headers: list[tuple[str, bytes]]) -> Request:
    raw = [(name.lower().encode(), value) for name, value in headers]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "client": (peer, 4321)})


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    # An untrusted peer's X-Forwarded-For is ignored (was believed from anyone: "*").
    ("203.0.113.9", [("X-Forwarded-For", b"198.51.100.1")], "203.0.113.9"),
    ("203.0.113.9", [("X-Forwarded-For", b"198.51.100.1"), ("X-Proxy-Secret", b"wrong-secret-0123456789")],
     "203.0.113.9"),
    # The shared secret vouches, whatever the peer; the rightmost parseable entry counts.
    ("203.0.113.9", [("X-Forwarded-For", b"198.51.100.1, 198.51.100.2"), ("X-Proxy-Secret", PROXY_SECRET.encode())],
     "198.51.100.2"),
    # A trusted peer (TRUSTED_PROXIES) vouches too; garbage, ports and non-ASCII are skipped.
    ("127.0.0.1", [("X-Forwarded-For", b"198.51.100.7, \xff\xfe, 1.2.3.4:80, nonsense")], "198.51.100.7"),
    ("127.0.0.1", [("X-Forwarded-For", b"198.51.100.7"), ("X-Forwarded-For", b"2001:DB8::1")], "2001:db8::1"),
    ("::1", [("X-Forwarded-For", "caf\u00e9".encode("latin-1"))], "::1"),
    ("127.0.0.1", [("X-Forwarded-For", b"," * 5000)], "127.0.0.1"),
    ("127.0.0.1", [("X-Forwarded-For", b"::ffff:198.51.100.3")], "198.51.100.3"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("testclient", [("X-Forwarded-For", b"198.51.100.1")], "testclient"),
])
def test_client_address_believes_forwarded_for_only_from_a_trusted_hop(
        peer: str, headers: list[tuple[str, bytes]], expected: str) -> None:
    address = client_address(_request(peer, headers), "127.0.0.1,::1", SecretStr(PROXY_SECRET))
    assert address == expected


def test_without_a_proxy_secret_only_trusted_peers_count() -> None:
    forged = [("X-Forwarded-For", b"198.51.100.1"), ("X-Proxy-Secret", b"")]
    assert client_address(_request("203.0.113.9", forged), "127.0.0.1", None) == "203.0.113.9"
    assert client_address(_request("10.1.2.3", forged), "10.0.0.0/8", None) == "198.51.100.1"


def test_trusted_proxies_and_proxy_secret_are_checked_at_start(sqlite_url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="TRUSTED_PROXIES|not an IP"):
        make_settings(sqlite_url, trusted_proxies="127.0.0.1, frontend.local")
    with pytest.raises(ValidationError):
        make_settings(sqlite_url, proxy_secret="too-short")
    assert make_settings(sqlite_url, proxy_secret="").proxy_secret is None
    assert make_settings(sqlite_url, trusted_proxies="10.0.0.0/8, fd00::/8").trusted_proxies


def _from(address: str) -> dict[str, str]:
    """Headers of a request the frontend passes on for the client at `address`."""
    return {"X-Forwarded-For": address, "X-Proxy-Secret": PROXY_SECRET}


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(db_url: str) -> None:
    settings = make_settings(db_url, auth_failures_per_user=5, auth_failures_per_address=30,
                             auth_failures_per_user_all_addresses=12, proxy_secret=PROXY_SECRET)
    with TestClient(create_app(settings)) as client:
        reset_throttle(client)
        user = signup(client, password=PASSWORD)
        wrong = {"username": user.username, "password": "wrong-password-x"}
        statuses = [client.post("/api/auth/login", json=wrong, headers=_from("198.51.100.1")).status_code
                    for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        refused = client.post("/api/auth/login", json=wrong, headers=_from("198.51.100.1"))
        assert "this account from your address (at most 5 in 5 minutes)" in refused.json()["detail"]
        # The owner, elsewhere, still signs in (the username alone was the key: 429).
        right = {"username": user.username, "password": PASSWORD}
        assert client.post("/api/auth/login", json=right, headers=_from("198.51.100.2")).status_code == 200
        # ...while the ceiling across addresses holds: 12 failures an hour, from any addresses
        # (5 counted above, refused attempts are not counted).
        spread = [client.post("/api/auth/login", json=wrong, headers=_from(f"192.0.2.{i}")).status_code
                  for i in range(10)]
        assert spread == [401] * 7 + [429] * 3, spread
        ceiling = client.post("/api/auth/login", json=right, headers=_from("192.0.2.200"))
        assert ceiling.status_code == 429 and "at most 12 per hour" in ceiling.json()["detail"]
        assert 3000 < int(ceiling.headers["retry-after"]) <= 3600


def test_sign_ups_per_address_per_hour(db_url: str) -> None:
    settings = make_settings(db_url, signups_per_address=100, signups_per_address_per_hour=3,
                             proxy_secret=PROXY_SECRET)
    with TestClient(create_app(settings)) as client:
        reset_throttle(client)
        statuses = [client.post("/api/auth/signup", json={"username": _name(), "password": PASSWORD},
                                headers=_from("198.51.100.9")).status_code for _ in range(5)]
        assert statuses == [201, 201, 201, 429, 429]
        refused = client.post("/api/auth/signup", json={"username": _name(), "password": PASSWORD},
                              headers=_from("198.51.100.9"))
        assert "sign-ups from your address (at most 3 per hour)" in refused.json()["detail"]
        assert 3000 < int(refused.headers["retry-after"]) <= 3600
        # Another client is not affected.
        other = client.post("/api/auth/signup", json={"username": _name(), "password": PASSWORD},
                            headers=_from("198.51.100.10"))
        assert other.status_code == 201


def test_the_looser_limits_never_fall_below_the_tight_ones(sqlite_url: str) -> None:
    from todo_api.routes.auth import failures_per_user_all_addresses, signups_per_hour

    shipped = make_settings(sqlite_url, auth_failures_per_user=5, signups_per_address=20)
    assert (failures_per_user_all_addresses(shipped), signups_per_hour(shipped)) == (100, 50)
    generous = make_settings(sqlite_url)
    assert (failures_per_user_all_addresses(generous), signups_per_hour(generous)) == (10_000, 10_000)


def test_concurrent_attempts_are_counted_before_they_are_checked(db_url: str) -> None:
    """Throttle.acquire on its own: 20 attempts at once on one key, at most 5 let through."""
    from todo_api.throttle import Limit

    with TestClient(create_app(make_settings(db_url))) as client:
        reset_throttle(client)
        state = client.app.state  # type: ignore[attr-defined]
        limit = Limit(f"ua:{uuid.uuid4().hex}", 5, 300, "tries")

        async def attempt() -> bool:
            async with state.db.read() as conn:
                return await state.throttle.acquire(conn, [limit]) is None

        async def burst() -> list[bool]:
            return await asyncio.gather(*(attempt() for _ in range(20)))

        allowed = client.portal.call(burst)  # type: ignore[union-attr]
        assert sum(allowed) == 5, allowed
