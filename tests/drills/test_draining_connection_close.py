"""Drill: once a server drains (SIGTERM), a kept-alive connection is let go at its next answer
(issue 22 item 4). Before, a client's pooled connection (the frontend's to the backend) kept
reaching the old pod, and so the old code, until the pod exited DRAIN_SECONDS later.

For both apps, as real processes: a keep-alive client asks once (the answer keeps the connection
open), SIGTERM is sent, the client asks again on the same socket: that answer is complete, says
`connection: close`, and the server closes the socket after it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.drills.local_apps import (
    BACKEND_DIR,
    FRONTEND_DIR,
    LocalApp,
    _env,
    free_port,
    start_backend,
)
from tests.drills.test_limits_and_abuse import _apps_available

pytestmark = pytest.mark.timeout(180)
DRAIN_S = 8.0  # long enough that the process is surely still draining when the second request goes


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    """The backend the frontend under test talks to (not the one signalled)."""
    require(_apps_available(), "the apps' dependencies (pip install -r requirements-dev.txt)")
    app = start_backend(tmp_path_factory.mktemp("draining-backend"))
    try:
        yield app
    finally:
        app.stop()


def _spawn(which: str, tmp: Path, backend: LocalApp) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    port = free_port()
    if which == "backend":
        env = _env(BACKEND_DIR, AUTH_SECRET="drill-auth-secret-0123456789abcdef",
                   DATABASE_URL=f"sqlite:///{tmp / 'todo.db'}", LLM_PROVIDER="offline", PORT=str(port))
        subprocess.run([sys.executable, "-m", "todo_api", "migrate"], cwd=tmp, env=env, check=True,
                       capture_output=True, timeout=120)
        module, page = "todo_api", "/api/meta"
    else:
        env = _env(FRONTEND_DIR, SESSION_SECRET="drill-session-secret-0123456789", BACKEND_URL=backend.url,
                   PORT=str(port))
        module, page = "todo_web", "/login"
    env["DRAIN_SECONDS"] = str(DRAIN_S)  # (_env sets 0)
    log = tmp / f"{which}.log"
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=tmp, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    return proc, port, page, log


def _connect_when_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60) -> socket.socket:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.returncode} at start:\n{log.read_text()[-2000:]}"
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"not listening after {timeout:.0f}s:\n{log.read_text()[-2000:]}")


def _exchange(sock: socket.socket, page: str) -> tuple[int, dict[str, str]]:
    """One keep-alive GET on `sock`: the status and the headers of its complete answer."""
    sock.sendall(f"GET {page} HTTP/1.1\r\nhost: drill\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection before answering {page}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    assert "content-length" in headers, f"expected a sized answer, got {headers}"
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of an answer"
        body += chunk
    return int(lines[0].split()[1]), headers


def _closed_by_server(sock: socket.socket, within: float = 3.0) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("which", ["backend", "frontend"])
def test_a_kept_alive_connection_is_closed_at_its_first_answer_once_draining(
        which: str, backend: LocalApp, tmp_path: Path) -> None:
    proc, port, page, log = _spawn(which, tmp_path, backend)
    try:
        deadline = time.monotonic() + 60
        while True:  # listening is not ready yet (the app's startup): ask until it answers 200
            with _connect_when_listening(proc, port, log) as probe:
                if _exchange(probe, page)[0] == 200 or time.monotonic() > deadline:
                    break
            time.sleep(0.2)
        with _connect_when_listening(proc, port, log) as sock:
            status, headers = _exchange(sock, page)
            assert status == 200 and headers.get("connection", "").lower() != "close", headers
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the handler has run; the drain lasts DRAIN_S
            assert proc.poll() is None, "the server stopped instead of draining"
            status, headers = _exchange(sock, page)
            # Today's code: a keep-alive answer (no connection header) and the socket stays open.
            assert status == 200, f"status {status} while draining"
            assert headers.get("connection", "").lower() == "close", (
                f"{which}: an answer while draining kept the connection alive "
                f"(connection: {headers.get('connection', '(none)')})")
            assert _closed_by_server(sock), f"{which}: the server left the connection open after `connection: close`"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
