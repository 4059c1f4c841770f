"""JSON logs on stdout, one line per record, and the per-request access/metrics middleware."""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any, TextIO

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


class BatchingHandler(logging.Handler):
    """Formats each record in the caller's thread and leaves the writing to one thread that
    writes what has gathered, one write at most every `interval` seconds: a slow reader
    of stdout (the container runtime, under load) never stalls the event loop, and a busy
    server wakes the writer (and hands it the GIL) a few times a second instead of once a
    request. (A queue with a listener thread woke it for every access-log line: ~0.1 ms of
    the process's CPU per request under the list bench, and a thread switch at every one.)
    A warning or worse is written at once. Bounded: past `maxsize` pending lines new ones
    are dropped (and counted), never buffered without end."""

    def __init__(self, stream: TextIO, interval: float = 0.1, maxsize: int = 10_000) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.maxsize = maxsize
        self.dropped = 0
        self._lines: deque[str] = deque()
        self._pending = threading.Event()  # lines are waiting
        self._urgent = threading.Event()  # write them now
        self._closing = False
        self._write_lock = threading.Lock()  # not the handler's lock: emit() never waits on a write
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 (logging's contract: a bad record never raises in the caller)
            self.handleError(record)
            return
        if len(self._lines) >= self.maxsize:
            self.dropped += 1
            return
        self._lines.append(line)
        if record.levelno >= logging.WARNING:
            self._urgent.set()
        if not self._pending.is_set():
            self._pending.set()

    def _run(self) -> None:
        while not self._closing:
            self._pending.wait()
            self._urgent.wait(self.interval)  # let a batch gather
            # Cleared before the lines are taken: a line added meanwhile sets it again.
            self._pending.clear()
            self._urgent.clear()
            self.flush()

    def flush(self) -> None:
        with self._write_lock:
            lines = []
            while self._lines:
                lines.append(self._lines.popleft())
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # stdout closed or gone: nothing else to tell
                self.dropped += len(lines)

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._pending.set()
            self._urgent.set()
            self._writer.join(timeout=5)
        self.flush()
        super().close()


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
