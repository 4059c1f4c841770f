"""Used by both apps (through server.py: todo_api.server, todo_web.__main__; BodyLimit by both apps' create_app): bounds on
what one client can make the server hold: request head size (431), body size
(413), time to send them (408), and the number of connections (503), without ever
refusing the probes.

- `BoundedHttpTools` is uvicorn's httptools protocol with a cap on the bytes of a
  request's head (request line + headers) and on the time to send it, counted from the
  connection's start (or the end of its last response), never restarted by a byte
  (slow-loris). uvicorn itself buffers a head of any size; this answers 431 and closes
  instead. Idle keep-alive connections are uvicorn's `timeout_keep_alive`'s to close.
- Connection slots: at most `max_per_client` open connections per client address; past it,
  that client's requests are answered 503 + Retry-After and closed, and its surplus
  connections do not count towards the server-wide limit (uvicorn's `limit_concurrency`),
  so one client cannot starve the others.
- Liveness (`liveness` paths, GET/HEAD) is answered by the protocol itself with a prebuilt
  response: no ASGI app, no task, nothing to wait behind, so it answers within one turn of
  the event loop however many requests are in flight. Readiness stays in the app.
- `BodyLimit` is ASGI middleware: a declared Content-Length over the limit is refused
  before a byte of the body is read; a chunked body is cut off at the limit; a body not
  complete within `timeout` of its first read, or arriving slower than `min_rate` bytes/s
  after a grace period, gets 408. Every refusal closes the connection, so the rest of the
  body is never read.
- Probe paths (the backend's `/health`, `/ready`, `/started`, the frontend's `/healthz`,
  `/readyz`) pass the connection limits.
- Draining (`Drain`, set by the server's SIGTERM handler through todo_serving.shutdown): every
  response from then on says `connection: close` and its connection is closed after it, so a
  client's kept-alive connection (the frontend's pool to the backend, a browser's to the
  frontend) leaves an old pod at its next answer instead of serving old code until the pod
  exits. In-flight requests finish; an idle connection is left to its next answer or its
  keep-alive timeout (closing it could cross a request already on the wire).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROBES = (b"/health", b"/ready", b"/started", b"/healthz", b"/readyz")
# A body must arrive at MIN_BODY_BYTES_PER_SECOND on average once it has had this long.
RATE_GRACE_SECONDS = 2.0


def _raw_response(status: int, reason: str, detail: str, extra: str = "") -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"{extra}content-length: {len(body)}\r\n\r\n").encode() + body


def liveness_response(content_type: str, body: bytes, head: bool = False) -> bytes:
    """A complete 200 answer for a liveness probe, built once. The connection is closed after
    it (kubelet opens one per probe), so nothing else on it has to be sequenced."""
    return (f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncache-control: no-store\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n").encode() + (b"" if head else body)


class Drain:
    """One server's draining flag: set from a signal handler (a plain attribute write)."""

    def __init__(self) -> None:
        self.started = False


class ClientSlots:
    """Open connections per client address (one server's). `counted` is what the server-wide
    limit sees: each client's connections up to `per_client`, never its surplus."""

    def __init__(self, per_client: int | None) -> None:
        self.per_client = per_client
        self.open: dict[str, int] = {}
        self.counted = 0

    def opened(self, host: str) -> None:
        count = self.open.get(host, 0) + 1
        self.open[host] = count
        if self.per_client is None or count <= self.per_client:
            self.counted += 1

    def closed(self, host: str) -> None:
        count = self.open.get(host, 0)
        if count <= 0:
            return
        if self.per_client is None or count <= self.per_client:
            self.counted -= 1
        if count == 1:
            del self.open[host]
        else:
            self.open[host] = count - 1

    def over(self, host: str) -> bool:
        return self.per_client is not None and self.open.get(host, 0) > self.per_client


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"detail": "The server is busy, try again shortly"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                            (b"connection", b"close"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestGate:
    """At most `limit` requests in the app at once (one server's); the rest wait their turn in
    arrival order, already read but not started. A burst then never puts hundreds of tasks in
    one turn of the event loop, so that turn stays short and whatever the protocol answers
    itself (liveness) is answered within it."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.running = 0
        self.waiting: deque[tuple[BoundedHttpTools, Any, ASGIApp]] = deque()

    def admit(self, protocol: BoundedHttpTools, cycle: Any, app: ASGIApp) -> None:
        if self.limit is not None and self.running >= self.limit:
            self.waiting.append((protocol, cycle, app))
        else:
            self._start(protocol, cycle, app)

    def _start(self, protocol: BoundedHttpTools, cycle: Any, app: ASGIApp) -> None:
        self.running += 1

        async def gated(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            finally:
                self._release()

        protocol.start_task(cycle, gated)

    def _release(self) -> None:
        self.running -= 1
        while self.waiting:
            protocol, cycle, app = self.waiting.popleft()
            if not protocol.transport.is_closing():  # its client is still there
                self._start(protocol, cycle, app)
                return


class BoundedHttpTools(HttpToolsProtocol):
    """Set the class attributes (see `configure`) before uvicorn starts."""

    max_head_bytes = 32_768
    head_timeout = 10.0
    slots = ClientSlots(None)
    gate = RequestGate(None)
    drain = Drain()
    liveness: ClassVar[dict[tuple[bytes, bytes], bytes]] = {}  # (method, path) -> the response

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_pending = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._host: str | None = None

    @classmethod
    def configure(cls, max_head_bytes: int, head_timeout: float, *, max_per_client: int | None = None,
                  max_running: int | None = None,
                  liveness: Iterable[tuple[str, str, bytes]] = ()) -> type[BoundedHttpTools]:
        """One server's protocol class. `max_running`: requests in the app at once (the probes
        never wait). `liveness`: (path, content type, body) answered 200 by the protocol itself
        on GET and HEAD."""
        answers = {}
        for path, content_type, body in liveness:
            answers[(b"GET", path.encode())] = liveness_response(content_type, body)
            answers[(b"HEAD", path.encode())] = liveness_response(content_type, body, head=True)
        return type("BoundedHttpToolsConfigured", (cls,), {
            "max_head_bytes": max_head_bytes, "head_timeout": head_timeout,
            "slots": ClientSlots(max_per_client), "gate": RequestGate(max_running), "drain": Drain(),
            "liveness": answers})

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str, detail: str, extra: str = "") -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status, reason, detail, extra))
            self.transport.close()

    def _answer(self, response: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_pending and self._head_bytes:  # an idle keep-alive is uvicorn's business
            self._refuse(408, "Request Timeout", "The request headers took too long to arrive")
        elif self._head_pending and self.cycle is None:
            self._refuse(408, "Request Timeout", "No request arrived in time")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # narrowed as uvicorn narrows it
        super().connection_made(transport)
        if self.client:
            self._host = self.client[0]
            self.slots.opened(self._host)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._host is not None:
            self.slots.closed(self._host)
            self._host = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_pending:
            self._head_bytes += len(data)
            if self._head_timer is None:  # bytes after a response that start no request (CRLFs)
                self._arm()
        super().data_received(data)
        # Counted after parsing: a head and the start of its body may share a read.
        if self._head_pending and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse(431, "Request Header Fields Too Large",
                         f"The request headers are larger than {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_pending = True
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._head_bytes = 0
        self._disarm()
        # A head that arrived in one read is only measured here, once parsed.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16
        if size > self.max_head_bytes:
            self._refuse(431, "Request Header Fields Too Large",
                         f"The request headers are larger than {self.max_head_bytes} bytes")
            return
        path = self.url.split(b"?", 1)[0]
        live = self.liveness.get((self.parser.get_method(), path))
        if live is not None and (self.cycle is None or self.cycle.response_complete):
            self._answer(live)
            return
        probe = path in PROBES
        if not probe and self._host is not None and self.slots.over(self._host):
            self._refuse(503, "Service Unavailable",
                         f"Too many connections from your address (at most {self.slots.per_client})",
                         "retry-after: 1\r\n")
            return
        # uvicorn's own limit check answers a bare 503 and counts every open socket; this one
        # adds Retry-After, never refuses a probe and does not count a client's surplus.
        limit, app = self.limit_concurrency, self.app
        waiting = len(self.tasks) + len(self.gate.waiting)
        if limit is not None and not probe and (self.slots.counted >= limit or waiting >= limit):
            self.app = _overloaded
        self.limit_concurrency = None
        try:
            super().on_headers_complete()
        finally:
            self.limit_concurrency, self.app = limit, app
        if self.drain.started and self.cycle is not None:
            self.cycle.keep_alive = False  # its answer says connection: close, then closes

    def close_after_response(self) -> None:
        """Draining began: a request whose answer has not started yet answers
        `connection: close` (uvicorn then closes the connection after it). An answer already
        sent keep-alive is not cut off after the fact: its client may be sending the next
        request on that connection right now; that request's answer closes it."""
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False
        for cycle, _app in self.pipeline:
            cycle.keep_alive = False

    def _start_asgi_task(self, cycle: Any, app: ASGIApp) -> None:  # type: ignore[override]  # ASGIApp is uvicorn's ASGI3Application
        if app is _overloaded or cycle.scope["raw_path"] in PROBES:
            self.start_task(cycle, app)  # never wait behind the requests
        else:
            self.gate.admit(self, cycle, app)

    def start_task(self, cycle: Any, app: ASGIApp) -> None:
        super()._start_asgi_task(cycle, app)  # type: ignore[arg-type]  # ASGIApp is uvicorn's ASGI3Application

    def on_body(self, body: bytes) -> None:
        if self.cycle is None or self.transport.is_closing():
            return  # refused above: nothing is listening for the body
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self.cycle is None or self.transport.is_closing():
            return
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._head_pending = True
        self._head_bytes = 0


class BodyLimit:
    """413 for bodies over `max_bytes`; 408 for a body not complete within `timeout` seconds
    of the app's first read (one deadline for the whole body, not per chunk: a byte every few
    seconds never restarts it), or arriving slower than `min_rate` bytes/s on average once
    it has had `RATE_GRACE_SECONDS` (0: no minimum rate)."""

    def __init__(self, app: ASGIApp, max_bytes: int = 65_536, timeout: float = 10.0, min_rate: float = 0.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.min_rate = min_rate

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def wait_budget(self, elapsed: float, received: int) -> float:
        """How long to wait for the next chunk, `elapsed` seconds into the body with `received`
        bytes in: until the whole body's deadline, or until the average rate would fall under
        `min_rate` if nothing more came."""
        budget = self.timeout - elapsed
        if self.min_rate > 0:
            budget = min(budget, max(RATE_GRACE_SECONDS, received / self.min_rate) - elapsed)
        # A chunk already buffered is returned without waiting; a zero timeout would refuse it.
        return max(budget, 0.01)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and (declared < 0 or declared > self.max_bytes):
            await self._refuse(send, 413, f"The request body is larger than {self.max_bytes} bytes")
            return

        loop = asyncio.get_running_loop()
        first_read: float | None = None
        received = 0
        complete = False
        started = False
        too_large = False

        async def bounded_receive() -> Message:
            nonlocal first_read, received, complete, too_large
            if complete:
                return await receive()  # after the body: http.disconnect, unbounded wait is right
            now = loop.time()
            if first_read is None:
                first_read = now
            try:
                message = await asyncio.wait_for(receive(), self.wait_budget(now - first_read, received))
            except TimeoutError:
                raise _SlowBody(408, "The request body took too long to arrive", CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge(413, f"The request body is larger than {self.max_bytes} bytes", CLOSE)
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except (_SlowBody, _TooLarge):
            if not started:
                if too_large:
                    await self._refuse(send, 413, f"The request body is larger than {self.max_bytes} bytes")
                else:
                    await self._refuse(send, 408, "The request body took too long to arrive")


# HTTPExceptions, so the app's own error handling renders them (FastAPI re-raises an
# HTTPException met while reading a body); "Connection: close" stops uvicorn reading on.
CLOSE = {"Connection": "close"}


class _SlowBody(HTTPException):
    pass


class _TooLarge(HTTPException):
    pass
