"""A small HTTP client that drives the frontend the way a browser does.

It keeps the signed session cookie, reads the CSRF token from `/api/session`
(re-read after every sign-in/out, since the token may rotate), posts the
sign-in/sign-up forms, and sends `X-CSRF-Token` on state-changing API calls.
It never talks to the backend: everything goes through the frontend's URL.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from typing import Any, Self

import httpx  # noqa: TID253 - the verify stage is loaded only when it runs (pipeline registry)

CSRF_HEADER = "X-CSRF-Token"


_ALERT = re.compile(r'<(\w+)\b(?=[^>]*\brole="alert")(?![^>]*\bhidden\b)[^>]*>(.*?)</\1\s*>',
                    re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_INVISIBLE = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _words(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def page_summary(page: str, limit: int = 120) -> str:
    """An HTML page in a few words: what it alerts the reader to (a visible role="alert":
    the frontend's error banner), else its title, else its first line of text."""
    alert = next((w for m in _ALERT.finditer(page) if (w := _words(m.group(2)))), "")
    title = _TITLE.search(page)
    if alert:
        words = alert
    elif title and _words(title.group(1)):
        words = _words(title.group(1))
    else:
        text = _TAG.sub("\n", _INVISIBLE.sub("", page))
        words = _words(next((line for line in text.splitlines() if line.strip()), ""))
    return (words[: limit - 1] + "…" if len(words) > limit else words) or "no text"


def body_excerpt(response: httpx.Response, limit: int = 200) -> str:
    """A response body as evidence: text, never HTML. A page (an HTTP 503's error page)
    becomes "(the frontend's error page: <its title or first text line>)"."""
    body = response.text
    is_page = "html" in response.headers.get("content-type", "") or body.lstrip()[:14].lower(
    ).startswith(("<!doctype", "<html"))
    if is_page:
        return f"(the frontend's error page: {page_summary(body)})"
    return " ".join(body[:limit].split())


class FrontendError(Exception):
    """An unexpected answer from the frontend (status and a short body excerpt)."""

    def __init__(self, what: str, response: httpx.Response | None = None, detail: str = "") -> None:
        self.status = response.status_code if response is not None else None
        excerpt = detail or (body_excerpt(response) if response is not None else "")
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        super().__init__(f"{what}: {status} {excerpt}".strip())


@dataclass
class FrontendClient:
    """One browser: one cookie jar, one CSRF token, one signed-in user at a time."""

    base_url: str
    timeout: float = 20.0
    username: str | None = None
    host: str = ""  # through an Ingress: its host (Host header; the certificate not verified)
    csrf: str = ""
    requests: int = field(default=0, init=False)
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, follow_redirects=False,
            **host_options(self.host),
        )

    # -- plumbing -----------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._http.cookies

    def clone(self) -> FrontendClient:
        """A second connection pool sharing this browser's session (for a load thread)."""
        other = FrontendClient(self.base_url, timeout=self.timeout, username=self.username,
                               host=self.host)
        other.csrf = self.csrf
        for cookie in self._http.cookies.jar:
            other._http.cookies.set(cookie.name, cookie.value or "", domain=cookie.domain)
        return other

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests += 1
        if method not in ("GET", "HEAD") and self.csrf:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault(CSRF_HEADER, self.csrf)
            kwargs["headers"] = headers
        return self._http.request(method, path, **kwargs)

    # -- pages and the session ----------------------------------------------------------
    def page(self, path: str = "/") -> httpx.Response:
        return self.request("GET", path)

    def session(self) -> dict[str, Any]:
        response = self.request("GET", "/api/session")
        if response.status_code != 200:
            raise FrontendError("GET /api/session", response)
        data: dict[str, Any] = response.json()
        self.csrf = str(data.get("csrf_token") or "")
        return data

    def _form(self, path: str, username: str, password: str) -> httpx.Response:
        if not self.csrf:
            self.session()
        form = {"username": username, "password": password, "csrf_token": self.csrf}
        # A browser's form post carries no X-CSRF-Token header: the field is the token.
        self.requests += 1
        response = self._http.post(path, data=form)
        if response.status_code == 303:
            self.username = username
        self.session()  # the token may rotate on sign-in
        return response

    def signup(self, username: str, password: str) -> httpx.Response:
        return self._form("/signup", username, password)

    def login(self, username: str, password: str) -> httpx.Response:
        return self._form("/login", username, password)

    def logout(self) -> httpx.Response:
        if not self.csrf:
            self.session()
        self.requests += 1
        response = self._http.post("/logout", data={"csrf_token": self.csrf})
        self.username = None
        self.session()
        return response

    # -- the JSON API (raw responses: the checks judge the status codes) -----------------
    def list_tasks(self, **params: Any) -> httpx.Response:
        return self.request("GET", "/api/tasks", params=params or None)

    def create_task(self, title: str, description: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"title": title}
        if description is not None:
            body["description"] = description
        return self.request("POST", "/api/tasks", json=body)

    def get_task(self, task_id: int | str) -> httpx.Response:
        return self.request("GET", f"/api/tasks/{task_id}")

    def update_task(self, task_id: int | str, **fields: Any) -> httpx.Response:
        return self.request("PUT", f"/api/tasks/{task_id}", json=fields)

    def complete_task(self, task_id: int | str, completed: bool | None = None) -> httpx.Response:
        body = None if completed is None else {"completed": completed}
        return self.request("PATCH", f"/api/tasks/{task_id}/complete", json=body)

    def delete_task(self, task_id: int | str) -> httpx.Response:
        return self.request("DELETE", f"/api/tasks/{task_id}")

    def chat(self, message: str, conversation_id: Any = None) -> httpx.Response:
        body: dict[str, Any] = {"message": message}
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        return self.request("POST", "/api/chat", json=body, timeout=max(self.timeout, 60.0))

    def conversations(self) -> httpx.Response:
        return self.request("GET", "/api/conversations")

    def meta(self) -> httpx.Response:
        return self.request("GET", "/api/meta")

    # -- conveniences for the checks -----------------------------------------------------
    def all_tasks(self) -> list[dict[str, Any]]:
        """Every task of the signed-in user (follows the pages)."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            response = self.list_tasks(limit=200, offset=offset)
            if response.status_code != 200:
                raise FrontendError("GET /api/tasks", response)
            page = response.json()
            batch = page.get("items", [])
            items.extend(batch)
            offset += len(batch)
            if not batch or offset >= int(page.get("total", 0)):
                return items


def host_options(host: str) -> dict[str, Any]:
    """httpx.Client options to reach the app through an Ingress at an address: the
    Ingress's host in the Host header, and no certificate check (self-signed, or made
    for the host, not the address). {} for a direct URL."""
    return {"headers": {"Host": host}, "verify": False} if host else {}


def wait_until_up(
    base_url: str, deadline_s: float = 30.0, path: str = "/", host: str = ""
) -> tuple[bool, str]:
    """Poll `path` until it answers 200 (a fresh port-forward or a restarted pod)."""
    last = ""
    end = time.monotonic() + deadline_s
    with httpx.Client(base_url=base_url, timeout=5.0, **host_options(host)) as http:
        while time.monotonic() < end:
            try:
                response = http.get(path)
                if response.status_code == 200:
                    return True, f"GET {path} -> 200"
                last = f"GET {path} -> {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"GET {path} -> {type(exc).__name__}"
            time.sleep(0.5)
    return False, last
