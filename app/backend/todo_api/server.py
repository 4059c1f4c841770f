"""The FastAPI app factory and a uvicorn server that drains on SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from todo_api import __version__, errors
from todo_api import logging as json_logging
from todo_api.agents import ChatAgent
from todo_api.agents.offline import OfflineAgent
from todo_api.db import make_engine
from todo_api.mcp_server import build_mcp
from todo_api.metrics import router as metrics_router
from todo_api.routes import auth, chat, health, tasks
from todo_api.settings import Settings

log = logging.getLogger("todo_api")


def make_agent(settings: Settings) -> ChatAgent:
    if settings.agent_provider == "openai":
        from todo_api.agents.openai_agent import OpenAIAgent

        return OpenAIAgent(settings)
    return OfflineAgent()


def create_app(settings: Settings, engine: Engine | None = None, agent: ChatAgent | None = None) -> FastAPI:
    engine = engine or make_engine(settings.database_url)
    mcp, mcp_route = build_mcp(settings, engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            app.state.started = True
            log.info("started", extra={})
            yield
        engine.dispose()

    app = FastAPI(title="Todo API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.agent = agent or make_agent(settings)
    app.state.started = False
    app.state.draining = False
    errors.install(app)
    for router in (auth.router, tasks.router, chat.router, health.router, metrics_router):
        app.include_router(router)
    app.router.routes.append(mcp_route)
    app.add_middleware(json_logging.RequestLogMiddleware)
    return app


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: fail /ready at once, keep serving DRAIN_SECONDS, then shut down gracefully."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:  # a second signal: stop now
            self.should_exit = True
            return
        self._draining = True
        self.app.state.draining = True
        log.info(f"received {signal.Signals(sig).name}: draining for {self.drain_seconds:g}s")
        timer = threading.Timer(self.drain_seconds, self._stop)
        timer.daemon = True
        timer.start()

    def _stop(self) -> None:
        log.info("drain finished, shutting down")
        self.should_exit = True


def serve(settings: Settings) -> None:
    json_logging.configure(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=max(5, int(settings.drain_seconds)),
        lifespan="on",
    )
    log.info(
        "serving",
        extra={"route": f"http://{settings.host}:{settings.port}"},
    )
    DrainingServer(config, app, settings.drain_seconds).run()
