"""Used by both apps (todo_api.server, todo_web.__main__): the uvicorn server they run, with
the request bounds of limits.py, and a drain on SIGTERM: readiness fails at once, requests keep
being served for `drain_seconds` (each answer closing its connection, shutdown.py), then a
graceful shutdown. A second signal stops at once."""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

import uvicorn

from todo_serving.limits import BoundedHttpTools
from todo_serving.shutdown import begin_draining, close_after_responses, closing_late_connections

KEEP_ALIVE_SECONDS = 5


def server_config(app: Any, *, host: str, port: int, max_header_bytes: int, client_timeout: float,
                  max_connections: int | None, max_per_client: int | None, max_running: int | None,
                  liveness: Iterable[tuple[str, str, bytes]], **options: Any) -> uvicorn.Config:
    """`liveness`: (path, content type, body) answered by the protocol itself, never queued
    behind the app. `options`: the app's own uvicorn settings (graceful timeout, lifespan ...)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,  # accesslog.py's middleware logs each request
        # The client's address is the TCP peer's: each app decides whose forwarded header counts.
        proxy_headers=False,
        # No route serves websockets: "auto" would import the websockets package at every start.
        ws="none",
        http=BoundedHttpTools.configure(max_header_bytes, client_timeout, max_per_client=max_per_client,
                                        max_running=max_running, liveness=liveness),
        # Past this many open connections (or requests in flight) the server answers 503;
        # the probes are exempt (limits.BoundedHttpTools).
        limit_concurrency=max_connections,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **options,
    )


class DrainingServer(uvicorn.Server):
    """A signal in `drain_on` starts the drain: `on_draining()` (the app's readiness fails),
    DRAIN_SECONDS more of serving, then a graceful shutdown. Any other handled signal (or a
    second one) shuts down gracefully at once; with `force_on_repeat`, one more forces exit."""

    def __init__(self, config: uvicorn.Config, *, drain_seconds: float, on_draining: Callable[[], None],
                 log: logging.Logger, drain_on: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
                 force_on_repeat: bool = False) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.on_draining = on_draining
        self.log = log
        self.drain_on = frozenset(drain_on)
        self.force_on_repeat = force_on_repeat
        self.drain_deadline: float | None = None
        self.drain_signal: int | None = None  # set by the handler, announced (and cleared) by on_tick

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the main thread was doing,
        # maybe inside a lock (a log handler's): it only sets flags, no logging, no thread.
        # (Unlike uvicorn's, it does not note the signal to raise it again after shutdown.)
        if sig in self.drain_on and self.drain_deadline is None and not self.should_exit:
            self.on_draining()
            begin_draining(self)
            self.drain_deadline = time.monotonic() + self.drain_seconds
            self.drain_signal = sig
            return
        if self.should_exit and self.force_on_repeat:
            self.force_exit = True
        self.on_draining()
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_signal is not None:
            name = signal.Signals(self.drain_signal).name
            self.log.info(f"received {name}: readiness failing, draining for {self.drain_seconds:g}s")
            self.drain_signal = None
            close_after_responses(self)
        if self.drain_deadline is not None and not self.should_exit and time.monotonic() >= self.drain_deadline:
            self.log.info("drain finished, shutting down")
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        async with closing_late_connections(self.server_state):
            await super().shutdown(sockets)
