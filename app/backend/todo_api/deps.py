"""What routes take as parameters instead of reaching into `request.app.state` (as
full-stack-fastapi-template's api/deps.py): the caller the token names, and the services
create_app built. Each is `async def` with no I/O: FastAPI runs a sync dependency in a
threadpool, a hop that costs more than the lookup itself on the request path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NamedTuple

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import State

from todo_api.agents import ChatAgent
from todo_api.client_address import client_address
from todo_api.db import Database
from todo_api.passwords import PasswordHashing
from todo_api.readiness import Readiness
from todo_api.routes.schemas import IdPath, PageQuery
from todo_api.security import AuthError, Caller, caller_from_header, unauthorized
from todo_api.settings import Settings
from todo_api.task_pages import TaskPages
from todo_api.throttle import Throttle

if TYPE_CHECKING:
    from todo_api.routes.chat import InFlight

FORBIDDEN = "You are not allowed to access another user's data"


def _state(request: Request) -> State:
    return request.app.state


def token_caller_of(request: Request) -> Caller:
    """The caller the bearer token names (401 with the reason otherwise). No database access:
    the route checks `session_is_current` on the connection it uses anyway."""
    try:
        return caller_from_header(request.headers.get("authorization"), _state(request).settings)
    except AuthError as exc:
        raise unauthorized(exc.detail) from None


def owner_of(request: Request, user_id: int) -> Caller:
    """The token's caller, who must be `user_id`, the path's (401 / 403 otherwise)."""
    caller = token_caller_of(request)
    if caller.user_id != user_id:
        raise HTTPException(403, FORBIDDEN)
    return caller


async def token_caller(request: Request) -> Caller:
    return token_caller_of(request)


async def path_owner(request: Request, user_id: IdPath) -> Caller:
    return owner_of(request, user_id)


def page_query(request: Request) -> PageQuery:
    """List tasks' path and query in one model validation, cheaper per request than declaring
    them as parameters (the hot route). Errors are located as FastAPI would (path / query)."""
    try:
        return PageQuery.model_validate({**request.query_params, **request.path_params})
    except ValidationError as exc:
        raise RequestValidationError([
            {**error, "loc": ("path" if error["loc"][:1] == ("user_id",) else "query", *error["loc"])}
            for error in exc.errors(include_url=False)]) from None


class Listing(NamedTuple):
    query: PageQuery
    caller: Caller
    pages: TaskPages


async def task_listing(request: Request) -> Listing:
    """List tasks' query, its owner (the path's user) and the pages, in one dependency: the
    hottest route, and each dependency FastAPI solves costs ~10 us of CPU per request."""
    query = page_query(request)
    return Listing(query, owner_of(request, query.user_id), _state(request).task_pages)


async def settings(request: Request) -> Settings:
    return _state(request).settings


async def database(request: Request) -> Database:
    return _state(request).db


async def throttle(request: Request) -> Throttle:
    return _state(request).throttle


async def hashing(request: Request) -> PasswordHashing:
    return _state(request).hashing


async def agent(request: Request) -> ChatAgent:
    return _state(request).agent


async def readiness(request: Request) -> Readiness:
    return _state(request).readiness


async def chat_slots(request: Request) -> InFlight:
    return _state(request).chat_in_flight


async def started(request: Request) -> bool:
    return bool(getattr(_state(request), "started", False))


async def draining(request: Request) -> bool:
    return bool(getattr(_state(request), "draining", False))


async def address(request: Request) -> str:
    """The client's address as the throttles count it (client_address.py: whose X-Forwarded-For counts)."""
    current = _state(request).settings
    return client_address(request, current.trusted_proxies, current.proxy_secret)


# The caller named by the token, who must be the path's {user_id}.
CurrentUser = Annotated[Caller, Depends(path_owner)]
# The caller named by the token, whoever it is (routes with no {user_id}).
TokenCaller = Annotated[Caller, Depends(token_caller)]
TaskListing = Annotated[Listing, Depends(task_listing)]
SettingsDep = Annotated[Settings, Depends(settings)]
DatabaseDep = Annotated[Database, Depends(database)]
ThrottleDep = Annotated[Throttle, Depends(throttle)]
HashingDep = Annotated[PasswordHashing, Depends(hashing)]
AgentDep = Annotated[ChatAgent, Depends(agent)]
ReadinessDep = Annotated[Readiness, Depends(readiness)]
ChatSlots = Annotated["InFlight", Depends(chat_slots)]
Started = Annotated[bool, Depends(started)]
Draining = Annotated[bool, Depends(draining)]
ClientAddress = Annotated[str, Depends(address)]
