"""The five task tools. One implementation, shared by MCP, the offline agent and the OpenAI agent.

Each function takes a DB session, the (server-side, authenticated) user id and
its arguments, flushes its changes (the caller commits) and returns a JSON-able dict.
Problems raise ToolError with a sentence a person understands.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import func
from sqlmodel import Session, col, select

from todo_api.models import DESCRIPTION_MAX, ID_MAX, TITLE_MAX, Task, utcnow

Status = Literal["all", "pending", "completed"]


class ToolError(Exception):
    """A tool could not do what was asked; the message is safe to show."""


def task_dict(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "user_id": task.user_id,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
    }


def clean_title(title: str) -> str:
    if not isinstance(title, str) or not title.strip():
        raise ToolError("title: must not be empty")
    if len(title) > TITLE_MAX:
        raise ToolError(f"title: must be at most {TITLE_MAX} characters")
    if has_control_chars(title, allowed="\t\n"):
        raise ToolError("title: must not contain control characters")
    return title


def clean_description(description: str | None) -> str:
    description = description or ""
    if len(description) > DESCRIPTION_MAX:
        raise ToolError(f"description: must be at most {DESCRIPTION_MAX} characters")
    if has_control_chars(description):
        raise ToolError("description: must not contain control characters")
    return description


def has_control_chars(text: str, allowed: str = "\t\n\r") -> bool:
    return any((ord(c) < 32 and c not in allowed) or 127 <= ord(c) < 160 for c in text)


def get_task(session: Session, user_id: int, task_id: int) -> Task:
    if not 1 <= task_id <= ID_MAX:  # no such row can exist; don't hand the database an overflow
        raise ToolError(f"Task {task_id} not found")
    task = session.exec(select(Task).where(Task.id == task_id, Task.user_id == user_id)).first()
    if task is None:
        raise ToolError(f"Task {task_id} not found")
    return task


def query_tasks(
    session: Session, user_id: int, status: Status = "all", limit: int | None = None, offset: int = 0
) -> tuple[list[Task], int]:
    stmt = select(Task).where(Task.user_id == user_id)
    count = select(func.count()).select_from(Task).where(Task.user_id == user_id)
    if status == "pending":
        stmt, count = stmt.where(col(Task.completed).is_(False)), count.where(col(Task.completed).is_(False))
    elif status == "completed":
        stmt, count = stmt.where(col(Task.completed).is_(True)), count.where(col(Task.completed).is_(True))
    elif status != "all":
        raise ToolError("status: must be one of all, pending, completed")
    stmt = stmt.order_by(col(Task.id).desc()).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    tasks = list(session.exec(stmt).all())
    if offset == 0 and (limit is None or len(tasks) < limit):
        return tasks, len(tasks)  # the page holds them all: no COUNT round trip
    return tasks, int(session.exec(count).one())


def add_task(session: Session, user_id: int, title: str, description: str | None = None) -> dict[str, Any]:
    task = Task(user_id=user_id, title=clean_title(title), description=clean_description(description))
    session.add(task)
    session.flush()
    return {"status": "created", "task": task_dict(task)}


def list_tasks(session: Session, user_id: int, status: str | None = "all") -> dict[str, Any]:
    tasks, total = query_tasks(session, user_id, (status or "all").lower())  # type: ignore[arg-type]
    return {"status": status or "all", "count": total, "tasks": [task_dict(t) for t in tasks]}


def complete_task(session: Session, user_id: int, task_id: int, completed: bool = True) -> dict[str, Any]:
    task = get_task(session, user_id, int(task_id))
    task.completed = completed
    task.updated_at = utcnow()
    session.add(task)
    session.flush()
    return {"status": "completed" if completed else "reopened", "task": task_dict(task)}


def delete_task(session: Session, user_id: int, task_id: int) -> dict[str, Any]:
    task = get_task(session, user_id, int(task_id))
    info = task_dict(task)
    session.delete(task)
    session.flush()
    return {"status": "deleted", "task": info}


def update_task(
    session: Session,
    user_id: int,
    task_id: int,
    title: str | None = None,
    description: str | None = None,
    completed: bool | None = None,
) -> dict[str, Any]:
    task = get_task(session, user_id, int(task_id))
    if title is not None:
        task.title = clean_title(title)
    if description is not None:
        task.description = clean_description(description)
    if completed is not None:
        task.completed = completed
    task.updated_at = utcnow()
    session.add(task)
    session.flush()
    return {"status": "updated", "task": task_dict(task)}


TOOL_NAMES = ("add_task", "list_tasks", "complete_task", "delete_task", "update_task")
