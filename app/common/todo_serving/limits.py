"""Used by both apps (todo_api.server, todo_web.server and todo_web.__main__): bounds on
what one client can make the server hold: request head size (431), body size
(413), time to send them (408), and the number of connections (503), without ever
refusing the probes.

- `BoundedHttpTools` is uvicorn's httptools protocol with a cap on the bytes of a
  request's head (request line + headers) and on the time to send it (slow-loris).
  uvicorn itself buffers a head of any size; this answers 431 and closes instead.
- `BodyLimit` is ASGI middleware: a declared Content-Length over the limit is refused
  before a byte of the body is read; a chunked body is cut off at the limit; a body that
  trickles slower than the timeout gets 408. Every refusal closes the connection, so the
  rest of the body is never read.
- Probe paths (the backend's `/health`, `/ready`, `/started`, the frontend's `/healthz`,
  `/readyz`) pass uvicorn's connection limit.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROBES = (b"/health", b"/ready", b"/started", b"/healthz", b"/readyz")


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"detail": "The server is busy, try again shortly"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                            (b"connection", b"close"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BoundedHttpTools(HttpToolsProtocol):
    """Set the class attributes (see `configure`) before uvicorn starts."""

    max_head_bytes = 32_768
    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_pending = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def configure(cls, max_head_bytes: int, head_timeout: float) -> type[BoundedHttpTools]:
        return type("BoundedHttpToolsConfigured", (cls,), {"max_head_bytes": max_head_bytes,
                                                           "head_timeout": head_timeout})

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status, reason, detail))
            self.transport.close()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_pending and self._head_bytes:  # an idle keep-alive is uvicorn's business
            self._refuse(408, "Request Timeout", "The request headers took too long to arrive")
        elif self._head_pending and self.cycle is None:
            self._refuse(408, "Request Timeout", "No request arrived in time")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_pending:
            self._head_bytes += len(data)
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
        # uvicorn's own limit check answers a bare 503; this one adds Retry-After and
        # never refuses a probe.
        limit, app = self.limit_concurrency, self.app
        probe = self.url.split(b"?", 1)[0] in PROBES
        if limit is not None and not probe and (len(self.connections) >= limit or len(self.tasks) >= limit):
            self.app = _overloaded
        self.limit_concurrency = None
        try:
            super().on_headers_complete()
        finally:
            self.limit_concurrency, self.app = limit, app

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
    """413 for bodies over `max_bytes`, 408 for bodies that trickle in slower than `timeout`."""

    def __init__(self, app: ASGIApp, max_bytes: int = 65_536, timeout: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

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

        received = 0
        complete = False
        started = False
        too_large = False

        async def bounded_receive() -> Message:
            nonlocal received, complete, too_large
            if complete:
                return await receive()  # after the body: http.disconnect, unbounded wait is right
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
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
