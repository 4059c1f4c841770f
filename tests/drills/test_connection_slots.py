"""Drills: connection slots against real backend and frontend processes (PostgreSQL) on loopback.

Issue 19 item 6, each failing on the code before it:
- a body trickled at 1 byte / 2 s is cut at the body's deadline (the old timeout restarted at
  every chunk, so it never ran out), and a body that stalls is cut at the minimum rate's grace;
- heads: idle from the connect, trickled, or CR/LF dribbled after a keep-alive response (no
  request ever begins, so no head timer was armed) are cut; an idle keep-alive is closed;
- one client (127.0.0.1) holding 200 idle sockets and 200 trickling bodies: a second client
  (127.0.0.2) still gets every request answered 200 and the liveness probe stays fast (the old
  server counted every open socket towards MAX_CONNECTIONS and answered everyone else 503);
- past MAX_CONNECTIONS_PER_CLIENT that client's requests get 503 + Retry-After, its probes and
  other clients are still served.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest

from tests.conftest import require
from tests.drills.local_apps import LocalApp, postgres_database, start_backend, start_frontend
from tests.drills.test_limits_and_abuse import _address, _apps_available, status_of

pytestmark = pytest.mark.timeout(300)
TIMEOUT_S = 3  # CLIENT_TIMEOUT_SECONDS: the head's and the whole body's deadline
MIN_RATE = "0.4"  # bytes/s: a byte every 2 s passes it, a body that stalls does not
MAX_CONNECTIONS = 300
PER_CLIENT = 100
KEEP_ALIVE_S = 5  # uvicorn's timeout_keep_alive in both apps
LIMITS = {"CLIENT_TIMEOUT_SECONDS": str(TIMEOUT_S), "MIN_BODY_BYTES_PER_SECOND": MIN_RATE,
          "MAX_CONNECTIONS": str(MAX_CONNECTIONS), "MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT)}
OTHER_CLIENT = "127.0.0.2"


@pytest.fixture(scope="module")
def backend(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    require(_apps_available(), "the apps' dependencies (pip install -r requirements-dev.txt)")
    with postgres_database(postgres_url, "slots") as url:
        app = start_backend(tmp_path_factory.mktemp("slots-backend"), DATABASE_URL=url, **LIMITS)
        try:
            yield app
        finally:
            app.stop()


@pytest.fixture(scope="module")
def frontend(backend: LocalApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApp]:
    app = start_frontend(tmp_path_factory.mktemp("slots-frontend"), backend.url, **LIMITS)
    try:
        yield app
    finally:
        app.stop()


def _paths(which: str) -> tuple[str, str, str]:
    """(liveness probe, a cheap page, a route that reads a body) of the app."""
    if which == "backend":
        return "/health", "/api/meta", "/api/auth/login"
    return "/healthz", "/api/session", "/login"


def _connect(app: LocalApp, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(_address(app.url))
    return sock


def _read_reply(sock: socket.socket, wait: float) -> bytes:
    """What arrives until the server closes the connection or `wait` seconds pass."""
    reply, deadline = b"", time.monotonic() + wait
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        reply += chunk
    return reply


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return data


def _dribble(sock: socket.socket, pieces: list[bytes], every: float, limit: float) -> tuple[bytes, float]:
    """Send a piece every `every` seconds until the server answers (or `limit` seconds);
    return the reply and the seconds from the first piece to the reply."""
    started = time.monotonic()
    for piece in pieces:
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        ready, _, _ = select.select([sock], [], [], every)
        if ready or time.monotonic() - started > limit:
            break
    reply = _read_reply(sock, max(0.5, limit - (time.monotonic() - started)))
    return reply, time.monotonic() - started


def _body_head(path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: drill\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize("which", ["backend", "frontend"])
def test_a_trickled_body_is_cut_at_its_deadline(which: str, request: pytest.FixtureRequest) -> None:
    app: LocalApp = request.getfixturevalue(which)
    _, _, reads = _paths(which)
    with _connect(app) as sock:
        sock.sendall(_body_head(reads, 20))
        reply, seconds = _dribble(sock, [b"u"] * 20, every=2.0, limit=TIMEOUT_S + 8)
    print(f"{which}: a body at 1 byte / 2 s answered {reply[:12]!r} after {seconds:.2f}s "
          f"(deadline {TIMEOUT_S}s)")
    assert reply, f"no answer in {seconds:.1f}s: the body's deadline never ran out"
    assert status_of(reply) == 408, reply[:300]
    assert TIMEOUT_S - 0.5 < seconds < TIMEOUT_S + 1.5, f"cut after {seconds:.2f}s"


@pytest.mark.parametrize("which", ["backend", "frontend"])
def test_a_stalled_body_is_cut_at_the_minimum_rate(which: str, request: pytest.FixtureRequest) -> None:
    app: LocalApp = request.getfixturevalue(which)
    _, _, reads = _paths(which)
    with _connect(app) as sock:
        sock.sendall(_body_head(reads, 20))
        started = time.monotonic()
        reply = _read_reply(sock, TIMEOUT_S + 3)
        seconds = time.monotonic() - started
    print(f"{which}: a body that never comes answered {reply[:12]!r} after {seconds:.2f}s")
    assert status_of(reply) == 408, reply[:300]
    assert seconds < TIMEOUT_S - 0.5, f"cut after {seconds:.2f}s: at the deadline, not the rate's grace (2 s)"


# ---------------------------------------------------------------- heads


@pytest.mark.parametrize("which", ["backend", "frontend"])
def test_idle_and_trickled_heads_are_cut(which: str, request: pytest.FixtureRequest) -> None:
    app: LocalApp = request.getfixturevalue(which)
    _, page, _ = _paths(which)
    idle, trickled = _connect(app), _connect(app)
    keep_alive = crlf = None
    try:
        started = time.monotonic()
        head = f"GET {page} HTTP/1.1\r\nHost: drill\r\nX-Slow: ".encode()
        trickled_reply, trickled_s = _dribble(trickled, [bytes([b]) for b in head] + [b"x"] * 40, every=0.5,
                                              limit=TIMEOUT_S + 4)
        idle_reply = _read_reply(idle, TIMEOUT_S + 4 - (time.monotonic() - started))
        idle_s = time.monotonic() - started
        keep_alive, crlf = _connect(app), _connect(app)
        for sock in (keep_alive, crlf):
            sock.sendall(f"GET {page} HTTP/1.1\r\nHost: drill\r\n\r\n".encode())
        for sock in (keep_alive, crlf):
            assert status_of(_read_response(sock)) == 200
        answered = time.monotonic()
        dribbled: list[tuple[bytes, float]] = []
        dribbler = threading.Thread(target=lambda: dribbled.append(
            _dribble(crlf, [b"\r\n"] * 40, every=0.5, limit=KEEP_ALIVE_S + TIMEOUT_S + 4)))
        dribbler.start()
        keep_alive_reply = _read_reply(keep_alive, KEEP_ALIVE_S + 2)
        keep_alive_s = time.monotonic() - answered
        dribbler.join()
        crlf_reply, crlf_s = dribbled[0]
    finally:
        for sock in (idle, trickled, keep_alive, crlf):
            if sock is not None:
                sock.close()
    print(f"{which}: idle from connect cut after {idle_s:.2f}s, trickled head {trickled_s:.2f}s, "
          f"CR/LF after a response {crlf_s:.2f}s, idle keep-alive closed within {keep_alive_s:.2f}s")
    for reply in (idle_reply, trickled_reply):
        assert status_of(reply) == 408, reply[:200]
    assert idle_s < TIMEOUT_S + 1.5 and trickled_s < TIMEOUT_S + 1.5
    assert keep_alive_reply == b"", "an idle keep-alive connection was answered, not closed"
    assert keep_alive_s < KEEP_ALIVE_S + 1.5, f"an idle keep-alive connection stayed open {keep_alive_s:.1f}s"
    assert crlf_s < TIMEOUT_S + 1.5, f"CR/LF dribbled after a response held the connection {crlf_s:.1f}s"
    assert crlf_reply == b"" or status_of(crlf_reply) == 408


# ---------------------------------------------------------------- one client, many sockets


class Hog:
    """One client (127.0.0.1) keeping `idle` sockets open that send nothing and `trickling`
    bodies that send a byte every 2 s, reopening whatever the server closes (at most
    REOPEN_PER_TICK every 0.1 s)."""

    REOPEN_PER_TICK = 40

    def __init__(self, app: LocalApp, reads: str, idle: int, trickling: int) -> None:
        self.app, self.reads = app, reads
        self.idle: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.want = (idle, trickling)
        self.refusals: list[bytes] = []
        self.opened = 0
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, trickle: bool) -> socket.socket | None:
        try:
            sock = _connect(self.app)
            if trickle:
                sock.sendall(_body_head(self.reads, 1000))
            return sock
        except OSError:
            return None

    def _reap(self, socks: list[socket.socket]) -> list[socket.socket]:
        alive = []
        readable, _, _ = select.select(socks, [], [], 0) if socks else ([], [], [])
        for sock in socks:
            if sock in readable:
                try:
                    reply = sock.recv(4096)
                except OSError:
                    reply = b""
                if reply and len(self.refusals) < 1000:
                    self.refusals.append(reply)
                sock.close()
            else:
                alive.append(sock)
        return alive

    def _run(self) -> None:
        ticks = 0
        while not self.stop.is_set():
            self.idle, self.trickling = self._reap(self.idle), self._reap(self.trickling)
            budget = self.REOPEN_PER_TICK if self.opened >= sum(self.want) else sum(self.want)
            for want, socks, trickle in ((self.want[0], self.idle, False), (self.want[1], self.trickling, True)):
                while len(socks) < want and budget > 0 and not self.stop.is_set():
                    sock = self._open(trickle)
                    if sock is None:
                        break
                    socks.append(sock)
                    self.opened += 1
                    budget -= 1
            self.peak = max(self.peak, len(self.idle) + len(self.trickling))
            if ticks % 20 == 0:
                for sock in self.trickling:
                    try:
                        sock.send(b"x")
                    except OSError:
                        pass
            ticks += 1
            self.stop.wait(0.1)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while self.opened < sum(self.want) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the server has seen them all
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for sock in self.idle + self.trickling:
            sock.close()


def _other_client(app: LocalApp, path: str, requests: int, probe: str) -> tuple[list[int], list[float]]:
    """`requests` GETs of `path` from 127.0.0.2 (10 at a time, fresh connections), and the
    latency of the liveness probe measured between them."""
    statuses: list[int] = []
    probes: list[float] = []
    transport = httpx.HTTPTransport(local_address=OTHER_CLIENT)
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=app.url, transport=transport, limits=limits, timeout=10) as client:
        for _ in range(requests // 10):
            threads = [threading.Thread(target=lambda: statuses.append(client.get(path).status_code))
                       for _ in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            started = time.monotonic()
            assert client.get(probe).status_code == 200
            probes.append(time.monotonic() - started)
            time.sleep(0.2)
    return statuses, probes


@pytest.mark.parametrize("which", ["backend", "frontend"])
def test_one_client_cannot_starve_the_others(which: str, request: pytest.FixtureRequest) -> None:
    app: LocalApp = request.getfixturevalue(which)
    probe, page, reads = _paths(which)
    with Hog(app, reads, idle=200, trickling=200) as hog:
        statuses, probes = _other_client(app, page, 100, probe)
    ok = statuses.count(200)
    print(f"{which}: one client opened {hog.opened} sockets (at most {hog.peak} at once); the other client {ok}/{len(statuses)} x 200 "
          f"({sorted(set(statuses))}), liveness max {max(probes):.3f}s; the hog's surplus: "
          f"{sum(r.startswith(b'HTTP/1.1 503') for r in hog.refusals)} x 503, "
          f"{sum(r.startswith(b'HTTP/1.1 408') for r in hog.refusals)} x 408")
    assert hog.peak >= 300, f"the hog held only {hog.peak} sockets at once"
    assert ok == len(statuses), f"the other client got {sorted(set(statuses))}: starved by one client's sockets"
    assert max(probes) < 0.5, f"liveness took {max(probes):.2f}s"
    surplus = [r for r in hog.refusals if r.startswith(b"HTTP/1.1 503")]
    assert surplus and all(b"retry-after: 1" in r.lower() for r in surplus), hog.refusals[:3]


@pytest.mark.parametrize("which", ["backend", "frontend"])
def test_past_its_cap_a_client_gets_503_with_retry_after(which: str, request: pytest.FixtureRequest) -> None:
    app: LocalApp = request.getfixturevalue(which)
    probe, page, _ = _paths(which)
    held = [_connect(app) for _ in range(PER_CLIENT)]
    try:
        time.sleep(0.3)
        refused = httpx.get(f"{app.url}{page}", timeout=5)
        assert refused.status_code == 503, refused.text[:200]
        assert refused.headers.get("retry-after") == "1"
        assert "Too many connections from your address" in refused.json()["detail"]
        assert httpx.get(f"{app.url}{probe}", timeout=5).status_code == 200  # probes exempt
        other = httpx.Client(transport=httpx.HTTPTransport(local_address=OTHER_CLIENT), timeout=5)
        with other:
            assert other.get(f"{app.url}{page}").status_code == 200
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{app.url}{page}", timeout=5).status_code == 200


def test_the_backend_default_never_caps_its_frontends(tmp_path: Path) -> None:
    """Unset, MAX_CONNECTIONS_PER_CLIENT is MAX_CONNECTIONS on the backend (its clients are
    the frontend pods): one address may hold most of the slots."""
    require(_apps_available(), "the apps' dependencies (pip install -r requirements-dev.txt)")
    app = start_backend(tmp_path, MAX_CONNECTIONS="100")
    held: list[socket.socket] = []
    try:
        held = [_connect(app) for _ in range(90)]
        time.sleep(0.3)
        assert httpx.get(f"{app.url}/api/meta", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()
        app.stop()
