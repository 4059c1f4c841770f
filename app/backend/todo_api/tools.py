"""The five task tools. One implementation, shared by REST, MCP, the offline agent and the OpenAI agent.

Each function takes an async DB connection, the (server-side, authenticated) user id and
its arguments, and returns a JSON-able dict. A task's `id` is its per-user number (1, 2,
3 ... for each user); the table's primary key never leaves the database. Problems raise
ToolError with a sentence a person understands; a quota reached raises LimitReached (409,
the same answer from every route). Writes that take two statements (`add_task` on SQLite)
need a connection inside a transaction (`Database.atomic()`); every other tool is a single
statement and is safe in autocommit. Every result is bounded: `list_tasks` returns a page
(the newest LIST_LIMIT by default, at most LIST_LIMIT_MAX) with the total and how to ask for more.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from sqlalchemy import Row, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException

from todo_api.db import MAX_TASKS_DEFAULT, MAX_TASKS_OPTION
from todo_api.models import DESCRIPTION_MAX, ID_MAX, TITLE_MAX, tasks, users, utcnow

Status = Literal["all", "pending", "completed"]
STATUSES = ("all", "pending", "completed")
LIST_LIMIT, LIST_LIMIT_MAX = 50, 200  # tasks in one list_tasks page: by default, at most

# What a task looks like to users: its number is its id.
TASK_COLUMNS = (
    tasks.c.number.label("id"), tasks.c.user_id, tasks.c.title, tasks.c.description, tasks.c.completed,
    tasks.c.created_at, tasks.c.updated_at,
)


class ToolError(Exception):
    """A tool could not do what was asked; the message is safe to show."""


class SessionEnded(Exception):
    """The caller's token version is no longer the user's (signed out)."""


class LimitReached(HTTPException):
    """A per-user quota is full. An HTTP error (409) so that every route that lets it through
    answers the same; tools' callers that are not routes (agents, MCP) show its detail."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


def task_quota_reached(limit: int) -> LimitReached:
    return LimitReached(f"You have reached the limit of {limit} tasks; delete some to add more")


def task_dict(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "title": row.title,
        "description": row.description,
        "completed": bool(row.completed),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
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
    if not isinstance(description, str):
        raise ToolError("description: must be text")
    if len(description) > DESCRIPTION_MAX:
        raise ToolError(f"description: must be at most {DESCRIPTION_MAX} characters")
    if has_control_chars(description):
        raise ToolError("description: must not contain control characters")
    return description


def has_control_chars(text: str, allowed: str = "\t\n\r") -> bool:
    """C0 controls (bar `allowed`), DEL, C1 controls, and the bidirectional controls that make
    text display in another order than it is stored (embeddings, overrides, isolates and the
    directional marks; "Trojan Source", CVE-2021-42574)."""
    if text.isprintable():  # the common case, at C speed: every character refused here is unprintable
        return False
    return any(
        (ord(c) < 32 and c not in allowed) or 127 <= ord(c) < 160
        or c in {"\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
                 "\u2066", "\u2067", "\u2068", "\u2069"}
        for c in text
    )


def _number(task_id: Any) -> int:
    try:
        number = int(task_id)
    except (TypeError, ValueError):
        raise ToolError(f"Task {task_id} not found") from None
    if not 1 <= number <= ID_MAX:  # no such task can exist; don't hand the database an overflow
        raise ToolError(f"Task {number} not found")
    return number


def _status(status: str | None) -> Status:
    value = (status or "all").lower()
    if value not in STATUSES:
        raise ToolError("status: must be one of all, pending, completed")
    return cast(Status, value)  # one of STATUSES, checked above


def _mine(user_id: int, status: Status) -> list[Any]:
    where = [tasks.c.user_id == user_id]
    if status == "pending":
        where.append(tasks.c.completed.is_(False))
    elif status == "completed":
        where.append(tasks.c.completed.is_(True))
    return where


async def get_task(conn: AsyncConnection, user_id: int, task_id: int) -> dict[str, Any]:
    number = _number(task_id)
    row = (await conn.execute(
        select(*TASK_COLUMNS).where(tasks.c.user_id == user_id, tasks.c.number == number)
    )).first()
    if row is None:
        raise ToolError(f"Task {number} not found")
    return task_dict(row)


async def query_tasks(
    conn: AsyncConnection, user_id: int, status: str = "all", limit: int | None = None, offset: int = 0,
    newest_first: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's tasks and how many there are in all (no COUNT when the page holds them all)."""
    where = _mine(user_id, _status(status))
    order = tasks.c.number.desc() if newest_first else tasks.c.number.asc()
    stmt = select(*TASK_COLUMNS).where(*where).order_by(order).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    page = [task_dict(r) for r in await conn.execute(stmt)]
    if offset == 0 and (limit is None or len(page) < limit):
        return page, len(page)
    total = (await conn.execute(select(func.count()).select_from(tasks).where(*where))).scalar_one()
    return page, int(total)


async def add_task(
    conn: AsyncConnection, user_id: int, title: str, description: str | None = None, token_version: int | None = None
) -> dict[str, Any]:
    """Takes the user's next number and inserts, atomically: one statement on PostgreSQL (safe
    in autocommit), two on SQLite (the caller's transaction). With `token_version`, only for
    a caller whose session is current (else SessionEnded). Only while the user has fewer tasks
    than the engine's quota (else LimitReached); the tasks are counted only when the user's
    numbers have reached it (numbers are never reused, so fewer numbers means fewer tasks).
    Concurrent adds by one user may pass the quota by the adds in flight, no more."""
    title, description = clean_title(title), clean_description(description)
    quota = int(conn.engine.get_execution_options().get(MAX_TASKS_OPTION, MAX_TASKS_DEFAULT))
    claim = update(users).where(users.c.id == user_id, or_(users.c.task_seq < quota, _task_count(user_id) < quota))
    if token_version is not None:
        claim = claim.where(users.c.token_version == token_version)
    claim = claim.values(task_seq=users.c.task_seq + 1).returning(users.c.task_seq.label("number"))
    now = utcnow()
    if conn.dialect.name == "postgresql":
        seq = claim.cte("seq")
        stmt = insert(tasks).from_select(
            ["user_id", "number", "title", "description", "completed", "created_at", "updated_at"],
            select(literal(user_id), seq.c.number, literal(title), literal(description), literal(False),
                   literal(now, tasks.c.created_at.type), literal(now, tasks.c.updated_at.type)),
        ).returning(*TASK_COLUMNS)
        row = (await conn.execute(stmt)).first()
    else:
        number = (await conn.execute(claim)).scalar()
        row = None if number is None else (await conn.execute(
            insert(tasks).values(user_id=user_id, number=number, title=title, description=description,
                                 completed=False, created_at=now, updated_at=now).returning(*TASK_COLUMNS)
        )).one()
    if row is None:
        if (await conn.execute(select(_task_count(user_id)))).scalar_one() >= quota:
            raise task_quota_reached(quota)
        if token_version is not None:
            raise SessionEnded
        raise ToolError("Your account no longer exists")
    return {"status": "created", "task": task_dict(row)}


def _task_count(user_id: int) -> Any:
    return select(func.count()).select_from(tasks).where(tasks.c.user_id == user_id).scalar_subquery()


def _whole(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name}: must be a whole number") from None
    return max(low, min(high, number))


async def list_tasks(
    conn: AsyncConnection, user_id: int, status: str | None = "all", limit: int = LIST_LIMIT, offset: int = 0
) -> dict[str, Any]:
    """One page of the user's tasks, newest first: `count` is how many there are in all; when
    more follow, `next_offset` and a sentence (`more`) say how to ask for them."""
    value = _status(status)
    limit = _whole(limit, "limit", 1, LIST_LIMIT_MAX)
    offset = _whole(offset, "offset", 0, ID_MAX)
    page, total = await query_tasks(conn, user_id, value, limit=limit, offset=offset)
    result: dict[str, Any] = {"status": value, "count": total, "limit": limit, "offset": offset, "tasks": page}
    shown_to = offset + len(page)
    if page and shown_to < total:
        result["next_offset"] = shown_to
        result["more"] = (f"Showing tasks {offset + 1}-{shown_to} of {total}, newest first. "
                          f"To see more, call list_tasks with offset={shown_to}.")
    return result


async def _change(conn: AsyncConnection, user_id: int, task_id: Any, **values: Any) -> dict[str, Any]:
    number = _number(task_id)
    row = (await conn.execute(
        update(tasks).where(tasks.c.user_id == user_id, tasks.c.number == number)
        .values(updated_at=utcnow(), **values).returning(*TASK_COLUMNS)
    )).first()
    if row is None:
        raise ToolError(f"Task {number} not found")
    return task_dict(row)


async def complete_task(conn: AsyncConnection, user_id: int, task_id: int, completed: bool = True) -> dict[str, Any]:
    task = await _change(conn, user_id, task_id, completed=bool(completed))
    return {"status": "completed" if completed else "reopened", "task": task}


async def delete_task(conn: AsyncConnection, user_id: int, task_id: int) -> dict[str, Any]:
    number = _number(task_id)
    row = (await conn.execute(
        delete(tasks).where(tasks.c.user_id == user_id, tasks.c.number == number).returning(*TASK_COLUMNS)
    )).first()
    if row is None:
        raise ToolError(f"Task {number} not found")
    return {"status": "deleted", "task": task_dict(row)}


async def update_task(
    conn: AsyncConnection,
    user_id: int,
    task_id: int,
    title: str | None = None,
    description: str | None = None,
    completed: bool | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if title is not None:
        values["title"] = clean_title(title)
    if description is not None:
        values["description"] = clean_description(description)
    if completed is not None:
        values["completed"] = bool(completed)
    return {"status": "updated", "task": await _change(conn, user_id, task_id, **values)}


async def clear_tasks(
    conn: AsyncConnection, user_id: int, status: str = "completed", up_to: int | None = None
) -> dict[str, Any]:
    """Delete all of the user's tasks with this status (the offline agent's "clear completed"),
    only those numbered up to `up_to` when given (what a confirmation question showed)."""
    value = _status(status)
    where = _mine(user_id, value)
    if up_to is not None:
        where.append(tasks.c.number <= _number(up_to))
    result = await conn.execute(delete(tasks).where(*where))
    return {"status": "deleted", "which": value, "count": int(result.rowcount or 0)}

