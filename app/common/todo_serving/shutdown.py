"""Used by both apps' DrainingServer (todo_api.server, todo_web.__main__): the end of a
graceful shutdown that never waits on a connection nobody told to close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


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
