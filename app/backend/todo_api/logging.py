"""JSON logs on stdout, one line per record, and the per-request access/metrics middleware."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api import metrics

access_log = logging.getLogger("todo_api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_EXTRA_KEYS = ("method", "path", "route", "status", "duration_ms", "request_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


class NonBlockingHandler(QueueHandler):
    """Hands records to a thread that writes them: a slow reader of stdout (the container
    runtime, under load) never stalls the event loop. Bounded: past `maxsize` queued records
    new ones are dropped (and counted), never buffered without end."""

    def __init__(self, maxsize: int = 10_000) -> None:
        super().__init__(queue.Queue(maxsize))
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatted by the writing thread's handler

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


_listener: QueueListener | None = None


def configure(level: str = "INFO") -> None:
    global _listener
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(JsonFormatter())
    handler = NonBlockingHandler()
    if _listener is not None:
        _listener.stop()
    _listener = QueueListener(handler.queue, stream)  # type: ignore[arg-type]
    _listener.start()
    atexit.register(_listener.stop)  # flush what is queued on the way out
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "httpx2", "openai", "mcp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "unmatched"


class RequestLogMiddleware:
    """Logs method, path, status, duration and request id; records Prometheus metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            duration = time.perf_counter() - start
            route = route_template(scope)
            metrics.observe(scope["method"], route, status, duration)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "request_id": request_id,
                },
            )
