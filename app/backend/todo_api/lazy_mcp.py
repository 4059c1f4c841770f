"""The /mcp route, with the MCP SDK imported and the server built on the route's first request.

The SDK is the largest part of the backend's import (~0.5 s of a ~2 s start on a quiet
machine, more on a busy one) and only MCP clients use it: a new pod starts, and a rollout
ends, that much sooner. The first /mcp request imports it in a worker thread (the event loop
keeps answering meanwhile), builds the server (todo_api.mcp_server.build_mcp: bearer auth
and all), and runs the SDK's session manager in a task of its own until the app shuts down.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.db import Database
from todo_api.settings import Settings

MODULE = "todo_api.mcp_server"


class LazyMcp:
    """An ASGI endpoint that builds the MCP server on its first request, then forwards to it."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._endpoint: ASGIApp | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return self._endpoint is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoint or await self._load()
        await endpoint(scope, receive, send)

    async def _load(self) -> ASGIApp:
        async with self._lock:
            if self._endpoint is None:
                module = await asyncio.to_thread(importlib.import_module, MODULE)
                server, route = module.build_mcp(self.settings, self.db)
                await self._start(server)
                self._endpoint = route.endpoint
        return self._endpoint

    async def _start(self, server: Any) -> None:
        """The session manager's run() entered (and later left) in one task of its own."""
        running = asyncio.Event()

        async def run() -> None:
            try:
                async with server.session_manager.run():
                    running.set()
                    await self._stop.wait()
            finally:
                running.set()

        self._runner = asyncio.create_task(run())
        await running.wait()
        if self._runner.done():
            self._runner.result()  # it failed to start: raise why

    async def close(self) -> None:
        """At shutdown: stop the session manager if the server was built."""
        self._stop.set()
        if self._runner is not None:
            await self._runner


def mcp_route(settings: Settings, db: Database) -> tuple[LazyMcp, Route]:
    """The /mcp route to add to the FastAPI app, and its endpoint (to close at shutdown)."""
    endpoint = LazyMcp(settings, db)
    return endpoint, Route("/mcp", endpoint=endpoint, methods=["GET", "POST", "DELETE"])
