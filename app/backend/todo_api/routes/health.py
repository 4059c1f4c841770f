"""Liveness, readiness, startup probes and the public /api/meta."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from todo_api import __version__, migrations

router = APIRouter(tags=["health"])


# Liveness and startup run on the event loop, never in the worker-thread pool:
# during a database outage every worker can be waiting on a connection, and a
# liveness probe queued behind them would time out and restart a healthy pod.
@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/started")
async def started(request: Request) -> JSONResponse:
    if getattr(request.app.state, "started", False):
        return JSONResponse({"status": "started"})
    return JSONResponse({"detail": "Still starting"}, status_code=503)


@router.get("/ready")
def ready(request: Request) -> JSONResponse:
    state = request.app.state
    if getattr(state, "draining", False):
        return JSONResponse({"detail": "draining: the server is shutting down"}, status_code=503)
    try:
        with state.engine.connect() as conn:
            current = migrations.current_revision(conn)
    except SQLAlchemyError:
        return JSONResponse({"detail": "database unreachable"}, status_code=503)
    head = migrations.head_revision()
    if current != head:
        return JSONResponse(
            {"detail": f"database schema is at {current or 'no revision'}, expected {head}: run 'python -m todo_api migrate'"},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "revision": current})


@router.get("/api/meta")
def meta(request: Request) -> dict[str, Any]:
    agent = request.app.state.agent
    return {"version": __version__, "agent": {"provider": agent.provider, "model": agent.model}}
