"""Drills: the frontend under a hostile client (issue 19), real frontend + backend on PostgreSQL.

Each reproduces a finding and asserts the fix:
- rotating X-Forwarded-For through the frontend: no more sign-ups than SIGNUPS_PER_ADDRESS
  (was 12/12 where 5 are allowed: the frontend believed and passed on anyone's header);
- a non-ASCII or garbage X-Forwarded-For: never a 5xx (was 500 on every backend call);
- JSON nested 30,000 deep, 1e999999, NaN: 400 (was 500);
- GET /login/ with a hostile Host: Location is a path on this site (was http://<Host>/login);
- X-Forwarded-Proto: https from an untrusted peer: no Secure cookie (was Secure);
- a conversation of 1,000 messages of 64 KB (64 MB of JSON) fetched 8 times at once through
  the frontend: its peak RSS stays under the chart's memory limit and each reply relayed is at
  most MAX_PROXY_BODY_BYTES (was parsed and re-serialised whole, far past the pod's limit).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from bench.client import PASSWORD, unique_user
from tests.drills.local_apps import (
    LocalApp,
    peak_rss_mib,
    pod_memory_limit_mib,
    postgres_database,
    start_backend,
    start_frontend,
)

pytestmark = pytest.mark.timeout(300)
MIB = 1024 * 1024
SIGNUPS = 5  # SIGNUPS_PER_ADDRESS of the backend here
PROXY_CAP = 4 * MIB  # the frontend's default MAX_PROXY_BODY_BYTES
MESSAGES, MESSAGE_BYTES = 1_000, 65_536
_helper_addresses = (f"192.0.2.{n}" for n in itertools.count(1))


@dataclass
class Apps:
    backend: LocalApp
    frontend: LocalApp
    database_url: str






@pytest.fixture(scope="module")
def apps(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    with postgres_database(postgres_url, "hostile_fe") as url:
        tmp = tmp_path_factory.mktemp("hostile-frontend")
        backend = start_backend(tmp, DATABASE_URL=url, SIGNUPS_PER_ADDRESS=str(SIGNUPS),
                                SIGNUPS_PER_ADDRESS_PER_HOUR=str(SIGNUPS),
                                AUTH_FAILURES_PER_ADDRESS="10000")
        try:
            frontend = start_frontend(tmp, backend.url)
            try:
                yield Apps(backend, frontend, url)
            finally:
                frontend.stop()
        finally:
            backend.stop()


class Browser:
    """A cookie jar and the CSRF token, as the page keeps them."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
        self.csrf = self.http.get("/api/session").json()["csrf_token"]

    def form(self, path: str, headers: dict[str, str | bytes] | None = None, **fields: str) -> httpx.Response:
        response = self.http.post(path, data={"csrf_token": self.csrf, **fields}, headers=headers)
        if response.status_code == 303:  # the token rotates at sign-in
            self.csrf = self.http.get("/api/session").json()["csrf_token"]
        return response

    def close(self) -> None:
        self.http.close()


def signed_in(apps: Apps) -> tuple[Browser, int]:
    """A user made on the backend directly (each from its own claimed address, so the
    sign-up limit under test is not spent), signed in through the frontend."""
    name = unique_user("h")
    made = httpx.post(f"{apps.backend.url}/api/auth/signup", json={"username": name, "password": PASSWORD},
                      headers={"X-Forwarded-For": next(_helper_addresses)}, timeout=30)
    assert made.status_code in (200, 201), made.text
    browser = Browser(apps.frontend.url)
    assert browser.form("/login", username=name, password=PASSWORD).status_code == 303
    return browser, int(made.json()["user_id"])


def test_rotating_forwarded_for_gets_no_more_signups(apps: Apps) -> None:
    outcomes = []
    for n in range(SIGNUPS + 7):
        browser = Browser(apps.frontend.url)
        response = browser.form("/signup", headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
                                username=unique_user("r"), password=PASSWORD)
        outcomes.append(response.status_code)
        browser.close()
    print(f"sign-ups with a rotating X-Forwarded-For: {outcomes.count(303)}/{len(outcomes)} (limit {SIGNUPS})")
    assert outcomes.count(303) <= SIGNUPS, outcomes
    assert set(outcomes) <= {303, 429}, outcomes


def test_garbage_forwarded_for_is_never_a_5xx(apps: Apps) -> None:
    browser, _ = signed_in(apps)
    hostile: list[bytes] = ["é, 1.2.3.4".encode(), b"\xff\xfe", b"1.2.3.4, \x80\x81", b"::ffff:", b"9" * 5000,
                            b"[::1", b"unknown"]
    try:
        for value in hostile:
            headers = {"X-Forwarded-For": value}
            for path in ("/", "/login", "/api/tasks", "/api/meta", "/api/conversations"):
                response = browser.http.get(path, headers=headers)
                assert response.status_code < 500, (value[:20], path, response.status_code)
            created = browser.http.post("/api/tasks", json={"title": "from a liar"},
                                        headers={**headers, "X-CSRF-Token": browser.csrf})
            assert created.status_code == 201, (value[:20], created.status_code)
            guest = Browser(apps.frontend.url)
            login = guest.form("/login", headers=headers, username="nobody-here", password="wrong-password")
            assert login.status_code < 500, (value[:20], login.status_code)
            guest.close()
    finally:
        browser.close()


@pytest.mark.parametrize("body", [b"[" * 30_000 + b"]" * 30_000, b'{"title": 1e999999}', b'{"title": NaN}',
                                  b'{"message": ' + b"[" * 100 + b"]" * 100 + b"}"])
def test_deep_or_non_finite_json_is_400(apps: Apps, body: bytes) -> None:
    browser, _ = signed_in(apps)
    try:
        for path in ("/api/tasks", "/api/chat"):
            response = browser.http.post(path, content=body, headers={
                "Content-Type": "application/json", "X-CSRF-Token": browser.csrf})
            assert response.status_code == 400, (path, response.status_code, response.text[:200])
    finally:
        browser.close()


def test_redirects_ignore_a_hostile_host(apps: Apps) -> None:
    for path in ("/login/", "/signup/"):
        response = httpx.get(f"{apps.frontend.url}{path}", headers={"Host": "evil.example"})
        location = response.headers.get("location", "")
        assert "evil.example" not in location and not location.startswith("//"), location
        assert response.status_code in (307, 308) and location == path.rstrip("/")


def test_forged_forwarded_proto_gets_no_secure_cookie(apps: Apps) -> None:
    for headers in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "proto=https"}):
        response = httpx.get(f"{apps.frontend.url}/api/session", headers=headers)
        assert "Secure" not in response.headers["set-cookie"], headers


def _insert_conversation(database_url: str, user_id: int) -> int:
    import psycopg

    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        conv_id = conn.execute("INSERT INTO conversations (user_id, created_at, updated_at) "
                               "VALUES (%s, %s, %s) RETURNING id", (user_id, now, now)).fetchone()[0]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO messages (conversation_id, user_id, role, content, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(conv_id, user_id, "user" if n % 2 == 0 else "assistant",
                  f"{n:05d} " + "m" * (MESSAGE_BYTES - 6), now) for n in range(MESSAGES)])
    return int(conv_id)


async def _fetch_bounded(url: str, cookies: httpx.Cookies, path: str) -> tuple[int, int]:
    """(status, bytes received); a reply cut off mid-body counts what arrived (status 0)."""
    received, status = 0, 0
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=120) as client:
        try:
            async with client.stream("GET", path) as response:
                status = response.status_code
                async for chunk in response.aiter_raw():
                    received += len(chunk)
        except httpx.HTTPError:
            status = 0
    return status, received


def test_huge_backend_reply_keeps_the_frontend_small(apps: Apps) -> None:
    browser, user_id = signed_in(apps)
    conv_id = _insert_conversation(apps.database_url, user_id)
    limit = pod_memory_limit_mib("frontend")
    before = peak_rss_mib(apps.frontend)

    async def eight() -> list[tuple[int, int]]:
        path = f"/api/conversations/{conv_id}/messages"
        return await asyncio.gather(*(_fetch_bounded(apps.frontend.url, browser.http.cookies, path)
                                      for _ in range(8)))

    try:
        results = asyncio.run(eight())
    finally:
        browser.close()
    peak = peak_rss_mib(apps.frontend)
    print(f"frontend peak RSS {before:.0f} -> {peak:.0f} MiB (limit {limit} Mi); replies {results}")
    assert peak < limit, f"frontend peak RSS {peak:.0f} MiB >= pod limit {limit} Mi"
    for status, received in results:
        assert status in (0, 200, 502), results
        assert received <= PROXY_CAP, results
    assert httpx.get(f"{apps.frontend.url}/healthz", timeout=5).status_code == 200
