"""Tasks REST API. Every route is scoped to the authenticated user."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from sqlmodel import Session

from todo_api import tools
from todo_api.db import get_session
from todo_api.models import ID_MAX
from todo_api.routes.schemas import CompleteIn, IdPath, TaskCreate, TaskOut, TaskPage, TaskUpdate
from todo_api.security import authorized_user

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"])


def _run(session: Session, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn(session, *args, **kwargs)
    except tools.ToolError as exc:
        session.rollback()
        message = str(exc)
        raise HTTPException(404 if message.endswith("not found") else 422, message) from None
    session.commit()
    return result


@router.get("", response_model=TaskPage)
def list_tasks(
    user_id: int = Depends(authorized_user),
    status: Literal["all", "pending", "completed"] = Query("all"),
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=ID_MAX),
    session: Session = Depends(get_session),
) -> TaskPage:
    tasks, total = tools.query_tasks(session, user_id, status, limit=limit, offset=offset)
    return TaskPage(items=[TaskOut.model_validate(t, from_attributes=True) for t in tasks], total=total,
                    limit=limit, offset=offset)


@router.post("", status_code=201, response_model=TaskOut)
def create_task(
    body: TaskCreate, user_id: int = Depends(authorized_user), session: Session = Depends(get_session)
) -> Any:
    return _run(session, tools.add_task, user_id, body.title, body.description)["task"]


@router.get("/{task_id}", response_model=TaskOut)
def get_task(task_id: IdPath, user_id: int = Depends(authorized_user), session: Session = Depends(get_session)) -> Any:
    try:
        return tools.task_dict(tools.get_task(session, user_id, task_id))
    except tools.ToolError as exc:
        raise HTTPException(404, str(exc)) from None


@router.put("/{task_id}", response_model=TaskOut)
def update_task(
    task_id: IdPath, body: TaskUpdate, user_id: int = Depends(authorized_user), session: Session = Depends(get_session)
) -> Any:
    return _run(
        session, tools.update_task, user_id, task_id, title=body.title, description=body.description,
        completed=body.completed,
    )["task"]


@router.delete("/{task_id}", status_code=204)
def delete_task(task_id: IdPath, user_id: int = Depends(authorized_user), session: Session = Depends(get_session)) -> Response:
    _run(session, tools.delete_task, user_id, task_id)
    return Response(status_code=204)


@router.patch("/{task_id}/complete", response_model=TaskOut)
def complete_task(
    task_id: IdPath,
    body: CompleteIn | None = Body(None),
    user_id: int = Depends(authorized_user),
    session: Session = Depends(get_session),
) -> Any:
    completed = body.completed if body is not None else True
    return _run(session, tools.complete_task, user_id, task_id, completed=completed)["task"]
