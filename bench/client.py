"""HTTP clients for the app: straight to the backend (Bearer token) or through the frontend.

Used by the benchmarks and by the reliability drills (tests/drills).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "drill-password-42"


def unique_user(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


@dataclass
class ApiUser:
    """A signed-up user of the backend API."""

    base_url: str
    user_id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, rest: str) -> str:
        return f"/api/{self.user_id}/{rest.lstrip('/')}"


def signup(base_url: str, username: str | None = None, timeout: float = 30) -> ApiUser:
    username = username or unique_user()
    response = httpx.post(f"{base_url}/api/auth/signup",
                          json={"username": username, "password": PASSWORD}, timeout=timeout)
    response.raise_for_status()
    body = response.json()
    return ApiUser(base_url, int(body["user_id"]), body["username"], body["token"])


class WebClient:
    """Drives the frontend the way the page does: session cookie + X-CSRF-Token header."""

    def __init__(self, base_url: str, timeout: float = 10) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=timeout)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def refresh_csrf(self) -> str:
        response = self.http.get("/api/session")
        response.raise_for_status()
        self.csrf = response.json()["csrf_token"]
        return self.csrf

    def signup(self, username: str | None = None) -> str:
        username = username or unique_user("w")
        self.refresh_csrf()
        response = self.http.post("/signup", data={
            "username": username, "password": PASSWORD, "csrf_token": self.csrf})
        if response.status_code != 303:
            raise RuntimeError(f"sign-up through the frontend gave {response.status_code}: "
                               f"{response.text[:300]}")
        self.refresh_csrf()
        return username

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    def cookies(self) -> dict[str, str]:
        return dict(self.http.cookies.items())

    def create_task(self, title: str, **extra: Any) -> httpx.Response:
        return self.http.post("/api/tasks", json={"title": title, **extra}, headers=self.headers)

    def list_tasks(self, **params: Any) -> httpx.Response:
        return self.http.get("/api/tasks", params=params)

    def all_titles(self) -> list[str]:
        titles: list[str] = []
        offset = 0
        while True:
            response = self.list_tasks(status="all", limit=200, offset=offset)
            response.raise_for_status()
            page = response.json()
            titles += [item["title"] for item in page["items"]]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return titles
