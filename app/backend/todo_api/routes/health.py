"""Liveness, readiness, startup probes and the public /api/meta."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from todo_api import __version__, migrations

router = APIRouter(tags=["health"])


# Every route is async and nothing blocks the event loop, so the probes answer at once
# whatever the load. Readiness uses a connection of its own (`state.probe_db`), never
# the request pool: a saturated pool means busy, not unready, and must not take every
# replica out of the Service at once.
READY_TIMEOUT_S = 0.9
@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/started")
async def started(request: Request) -> JSONResponse:
    if getattr(request.app.state, "started", False):
        return JSONResponse({"status": "started"})
    return JSONResponse({"detail": "Still starting"}, status_code=503)


async def _revision(request: Request) -> str | None:
    async with request.app.state.probe_db.read() as conn:
        revision: str | None = await conn.run_sync(migrations.current_revision)
        return revision


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state = request.app.state
    if getattr(state, "draining", False):
        return JSONResponse({"detail": "draining: the server is shutting down"}, status_code=503)
    try:
        current = await asyncio.wait_for(_revision(request), READY_TIMEOUT_S)
    except (SQLAlchemyError, OSError, TimeoutError):
        return JSONResponse({"detail": "database unreachable"}, status_code=503)
    head = migrations.head_revision()
    if current != head:
        return JSONResponse(
            {"detail": f"database schema is at {current or 'no revision'}, expected {head}: run 'python -m todo_api migrate'"},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "revision": current})


@router.get("/api/meta")
async def meta(request: Request) -> dict[str, Any]:
    agent = request.app.state.agent
    return {"version": __version__, "agent": {"provider": agent.provider, "model": agent.model}}
