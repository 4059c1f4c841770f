"""Fixtures that run a REAL backend (`python -m todo_api`) and frontend (`python -m todo_web`).

Each runs as its own process on a free port with a throw-away SQLite database and
the offline agent. Set TODO_WEB_TEST_BACKEND_URL to use an already-running backend
instead of starting one.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
BACKEND_DIR = REPO / "app" / "backend"
FRONTEND_DIR = REPO / "app" / "frontend"
COMMON_DIR = REPO / "app" / "common"  # todo_serving, which both apps import
if str(FRONTEND_DIR) not in sys.path:  # import todo_web helpers without installing it
    sys.path.insert(0, str(FRONTEND_DIR))

SESSION_SECRET = "test-session-secret-" + secrets.token_hex(8)
PASSWORD = "correct-horse-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pythonpath(*dirs: Path) -> str:
    parts = [str(d) for d in (*dirs, COMMON_DIR)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class Proc:
    url: str
    proc: subprocess.Popen[bytes] | None
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_frontend(tmp: Path, backend_url: str, **extra: str) -> Proc:
    port = free_port()
    log = tmp / f"frontend-{port}.log"
    env = {
        **os.environ,
        "PYTHONPATH": _pythonpath(FRONTEND_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "SESSION_SECRET": SESSION_SECRET,
        "BACKEND_URL": backend_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DRAIN_SECONDS": "0",
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "todo_web"],
        cwd=tmp,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", proc, log)
    return Proc(url, proc, log, env)


def backend_available() -> bool:
    if os.environ.get("TODO_WEB_TEST_BACKEND_URL"):
        return True
    return (BACKEND_DIR / "todo_api" / "__main__.py").exists() and (
        importlib.util.find_spec("sqlalchemy") is not None
    )


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A real todo_api process: migrated temp SQLite DB, offline agent."""
    external = os.environ.get("TODO_WEB_TEST_BACKEND_URL")
    tmp = tmp_path_factory.mktemp("backend")
    if external:
        yield Proc(external.rstrip("/"), None, tmp / "none.log")
        return
    require(backend_available(), "the backend package todo_api (app/backend) and its deps")
    port = free_port()
    log = tmp / "backend.log"
    env = {
        **os.environ,
        "PYTHONPATH": _pythonpath(BACKEND_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AUTH_SECRET": "test-auth-secret-" + secrets.token_hex(16),
        "DATABASE_URL": f"sqlite:///{tmp / 'todo.db'}",
        "LLM_PROVIDER": "offline",
        "OPENAI_API_KEY": "",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        # The suite signs many people up from one address; throttling has its own tests.
        "SIGNUPS_PER_ADDRESS": "100000",
        "AUTH_FAILURES_PER_ADDRESS": "100000",
        "AUTH_FAILURES_PER_USER": "100000",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "todo_api", "migrate"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "todo_api"],
        cwd=tmp,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    handle = Proc(url, proc, log, env)
    try:
        wait_ready(f"{url}/api/meta", proc, log, timeout=90)
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def frontend(backend: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    handle = start_frontend(tmp_path_factory.mktemp("frontend"), backend.url)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def frontend_backend_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A frontend whose BACKEND_URL points at a closed port."""
    handle = start_frontend(
        tmp_path_factory.mktemp("frontend-down"), f"http://127.0.0.1:{free_port()}",
        BACKEND_CONNECT_BUDGET_SECONDS="0.3",  # what the user is told, not how long we keep trying
    )
    try:
        yield handle
    finally:
        handle.stop()


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


class WebClient:
    """Drives the frontend the way a browser does: cookie jar, CSRF from /api/session."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=60)
        self.csrf = ""

    def session(self) -> dict:
        data = self.http.get("/api/session").json()
        self.csrf = data["csrf_token"]
        return data

    def form(self, path: str, **fields: str) -> httpx.Response:
        if not self.csrf:
            self.session()
        response = self.http.post(path, data={"csrf_token": self.csrf, **fields})
        if path == "/logout" and response.status_code == 303:  # rotated at sign-out too
            self.session()
        return response

    def signup(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return self._signed_in(self.form("/signup", username=username, password=password))

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return self._signed_in(self.form("/login", username=username, password=password))

    def _signed_in(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 303:  # the CSRF token rotates at sign-in: fetch the new one
            self.session()
        return response

    def api(self, method: str, path: str, json: object = None) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        return self.http.request(method, path, json=json, headers=headers)

    def plant_session(self, value: str) -> None:
        """Replace the session cookie (tests forge sessions signed with the test secret)."""
        from todo_web.session import COOKIE_NAME

        self.http.cookies.clear()
        self.http.cookies.set(COOKIE_NAME, value, domain=self.http.base_url.host, path="/")

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def web(frontend: Proc) -> Iterator[WebClient]:
    client = WebClient(frontend.url)
    yield client
    client.close()


@pytest.fixture
def signed_in(frontend: Proc) -> Iterator[tuple[WebClient, str]]:
    client = WebClient(frontend.url)
    name = unique_name()
    response = client.signup(name)
    assert response.status_code == 303, response.text
    yield client, name
    client.close()


# A stand-in backend that records what the frontend sends and answers what a test scripts,
# so the proxy's own behaviour (headers passed on, streaming, caps, refusals) is observable.


@dataclass
class Scripted:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunked: bool = False


class FakeBackend:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.replies: dict[str, Scripted] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                fake.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                # Most specific first: "POST /path?query", "POST /path", "/path".
                path = self.path.split("?")[0]
                reply = (fake.replies.get(f"{self.command} {self.path}")
                         or fake.replies.get(f"{self.command} {path}")
                         or fake.replies.get(path) or Scripted())
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(reply.body), 8192):
                        piece = reply.body[start:start + 8192]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # a cut-off relay
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last(self, path: str) -> tuple[str, dict[str, str]]:
        return next(seen for seen in reversed(self.seen) if seen[0].startswith(path))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def forged_client(url: str) -> WebClient:
    """Signed in as user 7 by a session cookie signed with the frontends' secret."""
    from todo_web.session import encode_session, make_signer

    client = WebClient(url)
    data = {"token": "t-123", "user_id": "7", "username": "someone", "csrf": "c" * 32}
    client.plant_session(encode_session(make_signer(SESSION_SECRET), data))
    client.csrf = data["csrf"]
    return client
