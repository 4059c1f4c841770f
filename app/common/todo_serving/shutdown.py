"""Used by server.DrainingServer (both apps'): the start of a
drain (every answer from then on closes its connection) and the end of a graceful shutdown
that never waits on a connection nobody told to close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


def begin_draining(server: uvicorn.Server) -> None:
    """From the SIGTERM handler: a flag only. From now on the server's protocol
    (limits.BoundedHttpTools) answers `connection: close` and closes each connection after its
    answer, so clients' kept-alive connections leave this process at their next request."""
    drain = getattr(getattr(server.config, "http_protocol_class", None), "drain", None)
    if drain is not None:
        drain.started = True


def close_after_responses(server: uvicorn.Server) -> None:
    """On the loop, once draining began: the requests already in the app when the signal came
    answer `connection: close` too (those read after it do by themselves)."""
    for connection in list(server.server_state.connections):
        close = getattr(connection, "close_after_response", None)
        if close is not None:
            close()


@contextlib.asynccontextmanager
async def closing_late_connections(server_state: Any, every: float = 0.1) -> AsyncIterator[None]:
    """While the body runs (uvicorn's Server.shutdown), ask every open connection to shut
    down every `every` seconds. uvicorn asks once, right after closing the listener: a
    connection accepted in that same moment missed it, served its request as keep-alive and
    held the shutdown until timeout_keep_alive or the graceful timeout (5 s) ran out."""

    async def keep_asking() -> None:
        while True:
            await asyncio.sleep(every)
            for connection in list(server_state.connections):
                connection.shutdown()

    asker = asyncio.create_task(keep_asking())
    try:
        yield
    finally:
        asker.cancel()
