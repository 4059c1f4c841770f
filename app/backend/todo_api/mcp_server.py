"""The five task tools over MCP (official SDK, streamable HTTP, stateless JSON mode), behind bearer auth."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api import tools
from todo_api.db import Database
from todo_api.security import AuthError, caller_from_header, session_is_current
from todo_api.settings import Settings

Tool = Callable[..., Awaitable[dict[str, Any]]]


def build_mcp(settings: Settings, db: Database) -> tuple[MCPServer, Route]:
    """An MCPServer with the five tools, and the /mcp route to add to the FastAPI app."""
    server: MCPServer = MCPServer("todo", instructions="Manage the signed-in user's todo list.")

    async def call(ctx: Context, user_id: int, fn: Tool, **kwargs: Any) -> dict[str, Any]:
        headers = ctx.headers or {}
        try:
            caller = caller_from_header(headers.get("authorization"), settings)
        except AuthError as exc:
            raise MCPToolError(exc.detail) from None
        if caller.user_id != user_id:
            raise MCPToolError(f"Not allowed: your token does not belong to user {user_id}")
        try:
            async with db.write() as conn:
                if not await session_is_current(conn, caller):
                    raise MCPToolError("Your session has ended (signed out), sign in again")
                return await fn(conn, user_id, **kwargs)
        except tools.ToolError as exc:
            raise MCPToolError(str(exc)) from None
        except tools.LimitReached as exc:
            raise MCPToolError(str(exc.detail)) from None

    @server.tool()
    async def add_task(user_id: int, title: str, ctx: Context, description: str | None = None) -> dict[str, Any]:
        """Add a task to the user's todo list."""
        return await call(ctx, user_id, tools.add_task, title=title, description=description)

    @server.tool()
    async def list_tasks(
        user_id: int, ctx: Context, status: str = "all", limit: int = tools.LIST_LIMIT, offset: int = 0
    ) -> dict[str, Any]:
        """List the user's tasks (status: all, pending or completed), newest first, one page at a
        time (limit 1-200, default 50; offset skips the newest). `count` is the total; when more
        follow, `next_offset` is the offset to ask for next."""
        return await call(ctx, user_id, tools.list_tasks, status=status, limit=limit, offset=offset)

    @server.tool()
    async def complete_task(user_id: int, task_id: int, ctx: Context) -> dict[str, Any]:
        """Mark one of the user's tasks as completed."""
        return await call(ctx, user_id, tools.complete_task, task_id=task_id)

    @server.tool()
    async def delete_task(user_id: int, task_id: int, ctx: Context) -> dict[str, Any]:
        """Delete one of the user's tasks."""
        return await call(ctx, user_id, tools.delete_task, task_id=task_id)

    @server.tool()
    async def update_task(
        user_id: int, task_id: int, ctx: Context, title: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Change the title and/or description of one of the user's tasks."""
        return await call(ctx, user_id, tools.update_task, task_id=task_id, title=title, description=description)

    starlette_app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    endpoint = next(r for r in starlette_app.routes if isinstance(r, Route)).endpoint
    return server, Route("/mcp", endpoint=BearerGate(endpoint, settings), methods=["GET", "POST", "DELETE"])


class BearerGate:
    """Rejects MCP requests without a valid bearer token before they reach the SDK."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            caller_from_header(headers.get("authorization"), self.settings)
        except AuthError as exc:
            body = json.dumps({"detail": exc.detail}).encode()
            await send({
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            })
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
