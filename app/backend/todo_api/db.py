"""Engine and session helpers."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy import Engine, create_engine
from sqlmodel import Session

DB_UNAVAILABLE = "The database is unavailable, try again shortly"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 5}, pool_pre_ping=True)
    return create_engine(
        url,
        pool_pre_ping=True,
        # A connection for each of the server's worker threads at peak, and a short
        # wait, so that an outage answers 503 quickly instead of queueing requests.
        pool_size=10,
        max_overflow=10,
        pool_timeout=3,
        connect_args={"connect_timeout": 3},
    )


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, rolled back unless committed."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session
