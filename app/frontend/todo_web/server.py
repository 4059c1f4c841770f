"""The ASGI application: middleware, routes, health probes, the shared backend client."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from todo_serving import jsonlog
from todo_serving.accesslog import AccessLogMiddleware
from todo_serving.limits import BodyLimit
from todo_serving.logwriter import BatchingHandler

from . import __version__, pages, proxy
from .backend_transport import ConnectBudget
from .session import SignedSessionMiddleware
from .settings import Settings

PACKAGE_DIR = Path(__file__).parent


@dataclass
class Lifecycle:
    """Shared between the app and the server runner: set when SIGTERM starts draining."""

    draining: bool = False
    started: float = field(default_factory=time.monotonic)


def configure_logging(level: str = "info") -> BatchingHandler:
    """JSON lines on stdout (todo_serving.jsonlog), written every 50 ms."""
    return jsonlog.configure(level, jsonlog.JsonFormatter(compact=True), interval=0.05, quiet=("httpx",))


# Conservative browser hardening; everything the page needs is served locally.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class HeadersMiddleware:
    """Adds fixed headers to every HTTP response: the security headers, and in dev mode
    `X-Code-Version` (TODO_CODE_VERSION, which todo_serving.devloop sets: through the
    frontend, GET /api/meta then shows both apps' code)."""

    def __init__(self, app: ASGIApp, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.app = app
        self.headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_wrapper)


# The backend closes a keep-alive connection after 5 idle seconds (uvicorn's
# timeout_keep_alive): reusing one at that moment loses the request ("server disconnected"),
# so the pool lets its idle connections go well before.
KEEPALIVE_EXPIRY_S = 2.0
CONNECT_TIMEOUT_S = 3.0


def create_app(settings: Settings, lifecycle: Lifecycle | None = None) -> FastAPI:
    lifecycle = lifecycle or Lifecycle()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.backend_timeout_seconds, connect=CONNECT_TIMEOUT_S)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                               keepalive_expiry=KEEPALIVE_EXPIRY_S)
        transport = ConnectBudget(httpx.AsyncHTTPTransport(limits=limits),
                                  settings.backend_connect_budget_seconds)
        async with httpx.AsyncClient(
            base_url=settings.backend_url, timeout=timeout, transport=transport, trust_env=False
        ) as client:
            app.state.http = client
            # All that start-up built lives as long as the process: keep it out of the
            # collector's full passes (a pause on every request in flight).
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="Todo chatbot web",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    # Starlette would redirect /login/ to http://<Host header>/login: pages.drop_slash does it, path only.
    app.router.redirect_slashes = False
    app.state.lifecycle = lifecycle
    templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
    templates.env.globals["version"] = __version__
    app.state.templates = templates

    app.add_middleware(
        SignedSessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        max_age=settings.session_max_age_seconds,
        secure=settings.cookie_secure,
        trusted_proxies=settings.trusted_networks,
    )
    app.add_middleware(HeadersMiddleware, headers=SECURITY_HEADERS)
    if code_version := os.environ.get("TODO_CODE_VERSION"):
        app.add_middleware(HeadersMiddleware, headers=((b"x-code-version", code_version.encode()),))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.client_timeout_seconds,
                       min_rate=settings.min_body_bytes_per_second)
    app.add_middleware(AccessLogMiddleware, logger="todo_web.access", duration_digits=1)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return templates.TemplateResponse(
            request,
            "error.html",
            {"status": exc.status_code, "detail": exc.detail},
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": "The request is not valid."}, status_code=422)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> PlainTextResponse:
        if lifecycle.draining:
            return PlainTextResponse("draining", status_code=503)
        return PlainTextResponse("ready")

    app.include_router(proxy.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static")
    return app
