"""The backend's JSON logs (todo_serving.jsonlog): one line per record on stdout."""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from todo_serving import jsonlog
from todo_serving.logwriter import BatchingHandler

# Libraries whose info lines are noise in the app's log: warnings and worse only.
QUIET = ("httpx", "httpx2", "openai", "mcp")


def configure(level: str = "INFO") -> BatchingHandler:
    return jsonlog.configure(level, jsonlog.JsonFormatter(), quiet=QUIET, record_filter=client_gone_is_no_error)


def client_gone_is_no_error(record: logging.LogRecord) -> bool:
    """A library's error about a client that went away mid-request (starlette's ClientDisconnect,
    e.g. the MCP transport's "Error handling POST request") is no fault here: info, no traceback."""
    if record.exc_info and isinstance(record.exc_info[1], ClientDisconnect):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args, record.exc_info, record.exc_text = "client went away", None, None, None
    return True
