"""Used by both apps (todo_api.logging, todo_web.server): JSON lines on stdout, one per record,
written by a BatchingHandler (logwriter.py) so a slow reader of stdout never stalls the event
loop, and uvicorn's own loggers routed through them (its access log off: accesslog.py's
middleware writes one line per request instead)."""

from __future__ import annotations

import atexit
import json
import logging
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from todo_serving.logwriter import BatchingHandler

# The access line's fields (accesslog.py), copied into the line when a record carries them.
ACCESS_KEYS = ("method", "path", "route", "status", "duration_ms", "request_id")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """ts, level, logger, msg, the ACCESS_KEYS a record carries, and an exception's type (never
    its text or traceback: they can carry request data). `compact`: no spaces after , and :."""

    def __init__(self, keys: Iterable[str] = ACCESS_KEYS, compact: bool = False) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.separators = (",", ":") if compact else (", ", ": ")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in self.keys:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=self.separators)


_handler: BatchingHandler | None = None


def configure(level: str, formatter: logging.Formatter, *, interval: float = 0.1,
              quiet: Iterable[str] = (), record_filter: Callable[[logging.LogRecord], bool] | None = None,
              ) -> BatchingHandler:
    """The root logger writes through one BatchingHandler (replacing the last one configured);
    `quiet` loggers (chatty libraries) log warnings and worse only."""
    global _handler
    if _handler is not None:
        _handler.close()
    _handler = BatchingHandler(sys.stdout, interval=interval)
    _handler.setFormatter(formatter)
    if record_filter is not None:
        _handler.addFilter(record_filter)
    atexit.register(_handler.close)  # write what is pending on the way out
    # None of these is in a line (JsonFormatter): don't gather them for every record. The
    # caller's file and line cost a walk up the stack, which is deep under ASGI middleware.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # the logging HOWTO's "Optimization": no sys._getframe() per record
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return _handler
