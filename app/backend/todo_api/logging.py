"""JSON logs on stdout, one line per record, and the per-request access/metrics middleware."""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from todo_serving.logwriter import BatchingHandler  # formats here, writes in batches on a thread of its own

from todo_api import metrics

access_log = logging.getLogger("todo_api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_EXTRA_KEYS = ("method", "path", "route", "status", "duration_ms", "request_id")
CLIENT_GONE = 499  # nginx's status for "the client closed the connection before it was answered"


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


_handler: BatchingHandler | None = None


def configure(level: str = "INFO") -> None:
    global _handler
    if _handler is not None:
        _handler.close()
    _handler = BatchingHandler(sys.stdout)
    _handler.setFormatter(JsonFormatter())
    atexit.register(_handler.close)  # write what is pending on the way out
    # None of these is in a line (JsonFormatter): don't gather them for every record. The
    # caller's file and line cost a walk up the stack, which is deep under ASGI middleware.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # the logging HOWTO's "Optimization": no sys._getframe() per record
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "httpx2", "openai", "mcp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _handler.addFilter(client_gone_is_no_error)


def client_gone_is_no_error(record: logging.LogRecord) -> bool:
    """A library's error about a client that went away mid-request (starlette's ClientDisconnect,
    e.g. the MCP transport's "Error handling POST request") is no fault here: info, no traceback."""
    if record.exc_info and isinstance(record.exc_info[1], ClientDisconnect):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args, record.exc_info, record.exc_text = "client went away", None, None, None
    return True


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
        started = gone = False  # gone: the client left before it was answered
        start = time.perf_counter()

        async def receive_wrapper() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect" and not started:
                gone = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            if gone:  # whatever the app made of it (a 400, a 500), nobody was there to be answered
                status = CLIENT_GONE
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
