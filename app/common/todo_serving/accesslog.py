"""Used by both apps (todo_api.server, todo_web.server): one log line per request, and the
app's metrics if it keeps any. The line's fields are record attributes (jsonlog.ACCESS_KEYS)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CLIENT_GONE = 499  # nginx's status for "the client closed the connection before it was answered"
Observe = Callable[[str, str, int, float], None]  # method, route template, status, seconds


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "unmatched"


class AccessLogMiddleware:
    """Logs method, path, status and duration (no query, no cookies) to `logger`.

    `request_ids`: the request's X-Request-Id (a fresh one when absent or malformed) is logged
    and echoed in the response. `routes`: the matched route's template is logged, and a request
    whose client left before it was answered is logged as CLIENT_GONE, whatever the app made of
    it. `observe` (with `routes`) records each request's metrics."""

    def __init__(self, app: ASGIApp, *, logger: str, request_ids: bool = False, routes: bool = False,
                 observe: Observe | None = None, duration_digits: int = 2) -> None:
        self.app = app
        self.log = logging.getLogger(logger)
        self.request_ids = request_ids
        self.routes = routes
        self.observe = observe
        self.digits = duration_digits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope) if self.request_ids else None
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
                if request_id is not None:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_wrapper if self.routes else receive, send_wrapper)
        finally:
            self._log(scope, CLIENT_GONE if gone else status, time.perf_counter() - start, request_id)

    @staticmethod
    def _request_id(scope: Scope) -> str:
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        return incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex

    def _log(self, scope: Scope, status: int, duration: float, request_id: str | None) -> None:
        fields: dict[str, object] = {"method": scope["method"], "path": scope["path"]}
        if self.routes:
            fields["route"] = route_template(scope)
            if self.observe is not None:
                self.observe(scope["method"], str(fields["route"]), status, duration)
        fields.update(status=status, duration_ms=round(duration * 1000, self.digits))
        if request_id is not None:
            fields["request_id"] = request_id
        self.log.info("request", extra=fields)
