"""Tasks REST API. Every route is scoped to the authenticated user; `{task_id}` is the
user's own task number (1, 2, 3 ...), the `id` of every task this API returns.

Each route is async and does its work on one pooled connection: the session check and
the statement(s), no ORM objects, and the JSON is built once (the response models below
document it; returning a Response skips validating it a second time).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from todo_api import idempotency, task_pages, tools
from todo_api.deps import CurrentUser, DatabaseDep, SettingsDep, TaskListing
from todo_api.routes.schemas import CompleteIn, IdPath, PageQuery, TaskCreate, TaskOut, TaskPage, TaskUpdate
from todo_api.security import REVOKED, require_current, unauthorized

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"])
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 503: {}}


def _http(exc: tools.ToolError) -> HTTPException:
    message = str(exc)
    return HTTPException(404 if message.endswith("not found") else 422, message)


VALIDATION_ERROR = {"description": "Validation Error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}


@router.get("", response_model=TaskPage, responses={**AUTH_ERRORS, 422: VALIDATION_ERROR},
            openapi_extra={"parameters": PageQuery.openapi_parameters()})
async def list_tasks(listing: TaskListing) -> Response:
    query, caller, pages = listing
    try:
        body = await pages.page(caller, query.status, query.limit, query.offset)
    except task_pages.Revoked:
        raise unauthorized(REVOKED) from None
    return Response(body, media_type="application/json")


@router.post("", status_code=201, response_model=TaskOut, responses={**AUTH_ERRORS, **idempotency.ERRORS})
async def create_task(request: Request, user_id: IdPath, body: TaskCreate, caller: CurrentUser, db: DatabaseDep,
                      settings: SettingsDep, idempotency_key: idempotency.IdempotencyKey = None) -> Response:
    key = idempotency.key_from(request)

    async def create() -> tuple[int, Any]:
        async with db.atomic() as conn:  # the session check is part of the statement
            try:
                result = await tools.add_task(conn, user_id, body.title, body.description, caller.token_version)
            except tools.SessionEnded:
                raise unauthorized(REVOKED) from None
            except tools.ToolError as exc:
                raise _http(exc) from None
        return 201, result["task"]

    if key is None:
        status, task = await create()
        return JSONResponse(task, status_code=status)
    secret = settings.auth_secret.get_secret_value()
    fingerprint = idempotency.fingerprint(secret, "POST", request.url.path, body.model_dump(mode="json"))
    outcome = await idempotency.replay_or_run(db, f"user:{user_id}", key, fingerprint, create)
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers())


@router.get("/{task_id}", response_model=TaskOut, responses=AUTH_ERRORS)
async def get_task(user_id: IdPath, task_id: IdPath, caller: CurrentUser, db: DatabaseDep) -> Response:
    async with db.read() as conn:
        await require_current(conn, caller)
        try:
            task = await tools.get_task(conn, user_id, task_id)
        except tools.ToolError as exc:
            raise _http(exc) from None
    return JSONResponse(task)


@router.put("/{task_id}", response_model=TaskOut, responses=AUTH_ERRORS)
async def update_task(user_id: IdPath, task_id: IdPath, body: TaskUpdate, caller: CurrentUser,
                      db: DatabaseDep) -> Response:
    async with db.read() as conn:
        await require_current(conn, caller)
        try:
            result = await tools.update_task(conn, user_id, task_id, title=body.title, description=body.description,
                                             completed=body.completed)
        except tools.ToolError as exc:
            raise _http(exc) from None
    return JSONResponse(result["task"])


@router.delete("/{task_id}", status_code=204, responses=AUTH_ERRORS)
async def delete_task(user_id: IdPath, task_id: IdPath, caller: CurrentUser, db: DatabaseDep) -> Response:
    async with db.read() as conn:
        await require_current(conn, caller)
        try:
            await tools.delete_task(conn, user_id, task_id)
        except tools.ToolError as exc:
            raise _http(exc) from None
    return Response(status_code=204)


@router.patch("/{task_id}/complete", response_model=TaskOut, responses=AUTH_ERRORS)
async def complete_task(
    user_id: IdPath, task_id: IdPath, caller: CurrentUser, db: DatabaseDep, body: CompleteIn | None = Body(None)
) -> Response:
    completed = body.completed if body is not None else True
    async with db.read() as conn:
        await require_current(conn, caller)
        try:
            result = await tools.complete_task(conn, user_id, task_id, completed=completed)
        except tools.ToolError as exc:
            raise _http(exc) from None
    return JSONResponse(result["task"])
