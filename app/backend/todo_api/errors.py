"""Exception handlers: every error body is {"detail": "<a sentence>"}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg import DataError as DriverDataError
from psycopg import IntegrityError as DriverIntegrityError
from psycopg import InterfaceError as DriverInterfaceError
from psycopg import OperationalError as DriverOperationalError
from psycopg.errors import LockNotAvailable, NumericValueOutOfRange, QueryCanceled
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from todo_api.db import DB_UNAVAILABLE
from todo_api.task_pages import Unavailable

log = logging.getLogger("todo_api")


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if not parts:
        return {"body": "request body", "query": "query"}.get(str(loc[0]) if loc else "", "request")
    return ".".join(parts)


def _reason(err: dict[str, Any]) -> str:
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_pattern_mismatch":
        return "may only contain letters, digits, '_', '.' and '-'"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = next(iter(ctx.values()), "")
        word = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than",
                "less_than": "less than"}[kind]
        return f"must be {word} {bound}"
    msg = str(err.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:]


def validation_sentence(errors: list[dict[str, Any]]) -> str:
    seen: list[str] = []
    for err in errors:
        line = f"{_field(err.get('loc', ()))}: {_reason(err)}"
        if line not in seen:
            seen.append(line)
    return "; ".join(seen[:5]) or "The request is invalid"


def _raw(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Never echo inputs back (they may be huge or secret).
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in errors]


async def on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    return JSONResponse({"detail": validation_sentence(errors), "errors": _raw(errors)}, status_code=422)


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI's "error parsing the body" for a disconnect
        return await on_client_disconnect(request, exc.__cause__)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"There is nothing at {request.url.path}"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


DB_BUSY = "The database is busy, try again shortly"
CONFLICT = "That conflicts with something stored meanwhile; reload and try again"
# Not sent to anyone (the client has gone); nginx's code for it, so the access log says so.
CLIENT_GONE = 499


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrapper (or the exception itself)."""
    return getattr(exc, "orig", None) or exc


async def on_database(_: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After: a lock or statement timeout (the database is busy), or a connection
    that failed or could not be had (it is unavailable)."""
    cause = _driver_error(exc)
    if isinstance(cause, LockNotAvailable | QueryCanceled):
        log.warning("database busy: %s", type(cause).__name__)
        return JSONResponse({"detail": DB_BUSY}, status_code=503, headers={"Retry-After": "1"})
    log.warning("database error: %s", type(exc).__name__)
    return JSONResponse({"detail": DB_UNAVAILABLE}, status_code=503, headers={"Retry-After": "2"})


def data_error_sentence(exc: BaseException) -> str:
    """What was wrong with the value, without echoing it (or the database's own message)."""
    cause = _driver_error(exc)
    if "NUL" in str(cause):  # psycopg refuses it before it reaches PostgreSQL, which cannot store it
        return "The request contains a NUL character, which cannot be stored"
    if isinstance(cause, NumericValueOutOfRange):
        return "A number in the request is out of range"
    return "The request holds a value that cannot be stored"


async def on_data_error(_: Request, exc: Exception) -> JSONResponse:
    """The database refused a value (NUL, a number out of range, text that is not a number...):
    the request's fault, never a sign that the database is down."""
    log.info("value refused by the database: %s", type(_driver_error(exc)).__name__)
    return JSONResponse({"detail": data_error_sentence(exc)}, status_code=422)


async def on_integrity(_: Request, exc: Exception) -> JSONResponse:
    """A constraint no route expected to meet (they handle the ones they do): a conflict."""
    log.warning("integrity error: %s", type(_driver_error(exc)).__name__)
    return JSONResponse({"detail": CONFLICT}, status_code=409)


async def on_other_database_error(request: Request, exc: Exception) -> Response:
    """A lost connection is the database being unavailable; anything else is a bug of ours."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return await on_database(request, exc)
    return await on_unexpected(request, exc)


async def on_client_disconnect(_: Request, __: Exception) -> Response:
    """The client went away while its body was being read: nobody to answer, nothing wrong here."""
    log.info("client went away")
    return Response(status_code=CLIENT_GONE)


async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error: %s", type(exc).__name__)
    return JSONResponse({"detail": "Something went wrong on our side, try again"}, status_code=500)


# What on_validation really sends, so the OpenAPI schema does not promise
# FastAPI's default list-shaped `detail`.
VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def _openapi_with_real_422(app: FastAPI) -> Any:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.get("components", {}).get("schemas", {})["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    app.openapi = _openapi_with_real_422(app)  # type: ignore[method-assign]  # FastAPI's documented override
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OperationalError, on_database)
    app.add_exception_handler(InterfaceError, on_database)
    app.add_exception_handler(DataError, on_data_error)
    app.add_exception_handler(IntegrityError, on_integrity)
    app.add_exception_handler(DBAPIError, on_other_database_error)
    app.add_exception_handler(PoolTimeoutError, on_database)  # every pooled connection busy or dead
    # the same from the driver itself (the list page's own pools, task_pages)
    app.add_exception_handler(DriverOperationalError, on_database)
    app.add_exception_handler(DriverInterfaceError, on_database)
    app.add_exception_handler(DriverDataError, on_data_error)
    app.add_exception_handler(DriverIntegrityError, on_integrity)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(PoolTimeout, on_database)
    app.add_exception_handler(Unavailable, on_database)
    app.add_exception_handler(Exception, on_unexpected)
