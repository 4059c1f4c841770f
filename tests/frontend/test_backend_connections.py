"""The frontend's connections to the backend: how it behaves when the backend is not there
yet (a new pod the Service does not route to yet, a restarted one), and when the backend
closes an idle keep-alive connection just as a request is sent on it."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.frontend.conftest import Proc, WebClient, forged_client, free_port, start_frontend

ANSWER = b'{"items": [], "total": 0}'
KEEPALIVE_S = 2.5  # this stand-in's keep-alive timeout, shorter than the real backend's 5 s


class KeepAliveBackend(socketserver.ThreadingTCPServer):
    """Answers every request 200 with JSON, keeping the connection open. A request that
    arrives on a connection idle for KEEPALIVE_S or more is dropped unanswered and the
    connection closed: what a server's keep-alive timeout does when it fires just as the
    client reuses the connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        self.connections = 0
        self.dropped = 0
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: KeepAliveBackend

    def handle(self) -> None:
        self.server.connections += 1
        sock: socket.socket = self.request
        buffered = b""
        idle_since = time.monotonic()
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(buffered) < length:
                buffered += sock.recv(65536)
            buffered = buffered[length:]
            if time.monotonic() - idle_since >= KEEPALIVE_S:
                self.server.dropped += 1
                sock.close()
                return
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
            idle_since = time.monotonic()


def timed_list(client: WebClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.api("GET", "/api/tasks")
    return response, time.monotonic() - started


def serve(server: KeepAliveBackend) -> KeepAliveBackend:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def frontend(port: int, tmp_path: Path) -> Iterator[Proc]:
    handle = start_frontend(tmp_path, f"http://127.0.0.1:{port}")
    yield handle
    handle.stop()


def test_a_backend_that_answers_a_moment_late_is_reached(port: int, frontend: Proc) -> None:
    """Nothing listens on the backend's port when the request arrives; it does 0.6 s later
    (a Service routing to a pod only after kube-proxy's next sync): the request gets through."""
    late: list[KeepAliveBackend] = []
    timer = threading.Timer(0.6, lambda: late.append(serve(KeepAliveBackend(port))))
    timer.start()
    client = forged_client(frontend.url)
    try:
        response, elapsed = timed_list(client)
        assert response.status_code == 200, response.text
        assert response.content == ANSWER
        assert elapsed >= 0.5  # it did wait for the backend, not answer from elsewhere
        assert late and late[0].connections >= 1
    finally:
        timer.cancel()
        client.close()
        for server in late:
            server.shutdown()
            server.server_close()


def test_a_backend_that_drops_connects_is_unreachable_within_the_budget(port: int, frontend: Proc) -> None:
    """The backend's port takes no new connection and refuses none: its accept queue is full,
    so the kernel drops the SYNs, as a Service with no ready pod can. The browser hears
    "unreachable" within the connect budget (3 s), not after every try's full connect timeout
    (a fixed 4 retries: ~15 s, past any browser's patience)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    queued = socket.create_connection(("127.0.0.1", port), timeout=1)  # fills the queue
    client = forged_client(frontend.url)
    try:
        response, elapsed = timed_list(client)
        assert response.status_code == 503, response.text
        assert "unreachable" in response.json()["detail"]
        assert 2.5 <= elapsed < 4.5, elapsed  # the budget was used, and no more
    finally:
        client.close()
        queued.close()
        listener.close()


def test_an_idle_connection_is_let_go_before_the_backend_closes_it(port: int, frontend: Proc) -> None:
    """Two requests 3 s apart: the second must not be sent on the first's connection, which
    the backend is closing (the frontend would answer 503 'unreachable' for a healthy backend)."""
    backend = serve(KeepAliveBackend(port))
    client = forged_client(frontend.url)
    try:
        assert client.api("GET", "/api/tasks").status_code == 200
        time.sleep(KEEPALIVE_S + 0.5)
        second = client.api("GET", "/api/tasks")
        assert second.status_code == 200, second.text
        assert backend.dropped == 0
        assert backend.connections == 2
    finally:
        client.close()
        backend.shutdown()
        backend.server_close()
