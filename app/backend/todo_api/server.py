"""The FastAPI app factory, and serving it (todo_serving.server: a uvicorn server that drains on SIGTERM)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from todo_serving.accesslog import AccessLogMiddleware
from todo_serving.limits import BodyLimit
from todo_serving.server import DrainingServer, server_config

from todo_api import __version__, errors, metrics, migrations, readiness
from todo_api import logging as json_logging
from todo_api.agents import ChatAgent
from todo_api.agents.offline import OfflineAgent
from todo_api.db import Database
from todo_api.lazy_mcp import mcp_route
from todo_api.metrics import router as metrics_router
from todo_api.passwords import PasswordHashing
from todo_api.routes import auth, chat, health, tasks
from todo_api.routes.health import LIVENESS_BODY
from todo_api.settings import Settings
from todo_api.task_pages import TaskPages
from todo_api.throttle import Throttle

log = logging.getLogger("todo_api")
# A probe's connection and query; within the kubelet's 2 s timeout, with room for a
# serverless database waking up (a few hundred ms).
READY_TIMEOUT_S = 1.5


def make_agent(settings: Settings) -> ChatAgent:
    if settings.agent_provider == "openai":
        from todo_api.agents.openai_agent import OpenAIAgent

        return OpenAIAgent(settings)
    return OfflineAgent()


def create_app(settings: Settings, db: Database | None = None, agent: ChatAgent | None = None) -> FastAPI:
    db = db or Database.from_settings(settings)
    probe, probe_engine = readiness.revision_probe(settings.database_url)
    ready = readiness.Readiness(probe, migrations.head_revision(), settings.db_probe_seconds, READY_TIMEOUT_S)
    readiness.watch(db.engine, ready)
    hashing = PasswordHashing(settings.password_hash_memory_kib, settings.password_hash_time_cost,
                              settings.password_hash_concurrency, settings.password_hash_wait_seconds)
    pages = TaskPages(db, settings.database_url, settings.db_pool_size, settings.db_pool_timeout_seconds,
                      outcomes=ready)
    mcp, mcp_endpoint = mcp_route(settings, db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pages.open()
        # Everything imported and built so far lives as long as the process: move it out
        # of the collector's sight. A full collection over it takes ~90 ms, a pause that
        # lands on whichever requests are in flight (the p99).
        gc.collect()
        gc.freeze()
        gc.enable()  # `python -m todo_api` starts with it off (__main__.py)
        app.state.started = True
        log.info("started", extra={})
        try:
            yield
        finally:
            await mcp.close()
        hashing.close()
        await pages.close()
        await db.dispose()
        await probe_engine.dispose()

    app = FastAPI(title="Todo API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.readiness = ready
    app.state.task_pages = pages
    app.state.hashing = hashing
    app.state.throttle = Throttle(settings.auth_window_seconds)
    app.state.agent = agent or make_agent(settings)
    app.state.chat_in_flight = chat.in_flight(settings)
    app.state.started = False
    app.state.draining = False
    errors.install(app)
    for router in (auth.router, tasks.router, chat.router, health.router, metrics_router):
        app.include_router(router)
    app.state.mcp = mcp
    app.router.routes.append(mcp_endpoint)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.client_timeout_seconds,
                       min_rate=settings.min_body_bytes_per_second)
    app.add_middleware(AccessLogMiddleware, logger="todo_api.access", request_ids=True, routes=True,
                       observe=metrics.observe)
    return app


def serve(settings: Settings) -> None:
    draining_server(settings).run()


def draining_server(settings: Settings) -> DrainingServer:
    """The server `serve` runs; todo_serving.devloop's children run it on an inherited socket."""
    json_logging.configure(settings.log_level)
    app = create_app(settings)
    config = server_config(
        app, host=settings.host, port=settings.port, max_header_bytes=settings.max_header_bytes,
        client_timeout=settings.client_timeout_seconds, max_connections=settings.max_connections,
        max_per_client=settings.max_connections_per_client or settings.max_connections,
        max_running=settings.max_requests_running,
        # Answered by the protocol, never queued behind the app (routes/health.py's body).
        liveness=[("/health", "application/json", LIVENESS_BODY)],
        timeout_graceful_shutdown=max(5, int(settings.drain_seconds)), lifespan="on")
    log.info("serving", extra={"route": f"http://{settings.host}:{settings.port}"})

    def draining() -> None:
        app.state.draining = True

    return DrainingServer(config, drain_seconds=settings.drain_seconds, on_draining=draining, log=log)
