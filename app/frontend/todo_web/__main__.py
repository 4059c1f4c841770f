"""``python -m todo_web``: serve with graceful, readiness-first shutdown on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn
from todo_serving.limits import BoundedHttpTools
from todo_serving.shutdown import begin_draining, close_after_responses, closing_late_connections

from .server import Lifecycle, configure_logging, create_app
from .settings import load_settings

log = logging.getLogger("todo_web")


class DrainingServer(uvicorn.Server):
    """SIGTERM: fail readiness at once, keep serving DRAIN_SECONDS, then shut down.

    SIGINT (Ctrl+C) shuts down gracefully at once; a second signal forces exit.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float):
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self.drain_deadline: float | None = None
        self.drain_announced = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of whatever the main thread was doing, maybe inside a
        # lock: it only sets flags. on_tick (on the loop) logs and acts on them.
        if sig == signal.SIGTERM and self.drain_deadline is None and not self.should_exit:
            self.lifecycle.draining = True
            begin_draining(self)
            self.drain_deadline = time.monotonic() + self.drain_seconds
            self.drain_announced = False
            return
        if self.should_exit:
            self.force_exit = True
        self.lifecycle.draining = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_deadline is not None and not self.drain_announced:
            self.drain_announced = True
            log.info("SIGTERM: readiness failing, draining for %.1fs", self.drain_seconds)
            close_after_responses(self)
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        async with closing_late_connections(self.server_state):
            await super().shutdown(sockets)


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # The client's address and scheme are the TCP peer's unless TRUSTED_PROXIES says
        # otherwise: todo_web.forwarded decides, so uvicorn must believe no forwarded header.
        proxy_headers=False,
        timeout_graceful_shutdown=max(settings.backend_timeout_seconds, 10),  # type: ignore[arg-type]  # typed int, waited on as a float
        server_header=False,
        # No route serves websockets: "auto" would import the websockets package at every start.
        ws="none",
        http=BoundedHttpTools.configure(
            settings.max_header_bytes, settings.client_timeout_seconds,
            max_per_client=settings.max_connections_per_client,
            max_running=settings.max_requests_running,
            # Answered by the protocol, never queued behind the app (server.py's /healthz body).
            liveness=[("/healthz", "text/plain; charset=utf-8", b"ok")]),
        # Past this many open connections (or requests in flight) the server answers 503;
        # the probes are exempt (limits.BoundedHttpTools).
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
    )
    log.info(
        "todo_web listening on %s:%d, backend %s",
        settings.host,
        settings.port,
        settings.backend_url,
    )
    DrainingServer(config, lifecycle, settings.drain_seconds).run()


if __name__ == "__main__":
    main()
