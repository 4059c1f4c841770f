"""``python -m todo_web``: serve with graceful, readiness-first shutdown on SIGTERM
(todo_serving.server); SIGINT (Ctrl+C) shuts down gracefully at once, a second signal forces exit."""

from __future__ import annotations

import logging
import signal

from todo_serving.server import DrainingServer, server_config

from .server import Lifecycle, configure_logging, create_app
from .settings import load_settings

log = logging.getLogger("todo_web")


def main() -> None:
    build_server().run()


def build_server() -> DrainingServer:
    """What `main` runs, built but not started: todo_serving.devloop's children run it on the
    supervisor's socket."""
    settings = load_settings()
    configure_logging(settings.log_level)
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle)
    config = server_config(
        app, host=settings.host, port=settings.port, max_header_bytes=settings.max_header_bytes,
        client_timeout=settings.client_timeout_seconds, max_connections=settings.max_connections,
        max_per_client=settings.max_connections_per_client, max_running=settings.max_requests_running,
        # Answered by the protocol, never queued behind the app (server.py's /healthz body).
        liveness=[("/healthz", "text/plain; charset=utf-8", b"ok")],
        timeout_graceful_shutdown=max(settings.backend_timeout_seconds, 10), server_header=False)
    log.info("todo_web listening on %s:%d, backend %s", settings.host, settings.port, settings.backend_url)

    def draining() -> None:
        lifecycle.draining = True

    return DrainingServer(config, drain_seconds=settings.drain_seconds, on_draining=draining, log=log,
                          drain_on=[signal.SIGTERM], force_on_repeat=True)


if __name__ == "__main__":
    main()
