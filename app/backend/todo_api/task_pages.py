"""A page of the task list as JSON, the backend's hottest path.

On PostgreSQL it is one round trip: one statement checks the session (the token's version
against the user's) and has the database build the page's JSON, which is passed through
untouched (no rows turned into objects and back). A COUNT follows only when the page is
full or not the first. Elsewhere (SQLite: development and tests) it takes the generic
route through `tools.query_tasks`. Both give the same document.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api import tools
from todo_api.models import tasks
from todo_api.security import Caller, session_is_current

_PAGE_SQL = """
WITH page AS (
    SELECT number, user_id, title, description, completed, created_at, updated_at FROM tasks
    WHERE user_id = %(uid)s AND (%(status)s = 'all' OR completed = (%(status)s = 'completed'))
    ORDER BY number DESC LIMIT %(limit)s OFFSET %(offset)s
)
SELECT u.token_version, p.items, p.n
FROM users u, (
    SELECT coalesce(json_agg(json_build_object(
        'id', number, 'user_id', user_id, 'title', title, 'description', description,
        'completed', completed, 'created_at', created_at, 'updated_at', updated_at
    ) ORDER BY number DESC), '[]')::text AS items, count(*) AS n FROM page
) p
WHERE u.id = %(uid)s
"""


class Revoked(Exception):
    """The token's session has ended (or its user is gone)."""


async def _total(conn: AsyncConnection, user_id: int, status: str) -> int:
    where = [tasks.c.user_id == user_id]
    if status != "all":
        where.append(tasks.c.completed.is_(status == "completed"))
    return int((await conn.execute(select(func.count()).select_from(tasks).where(*where))).scalar_one())


def _document(items: str, total: int, limit: int, offset: int) -> bytes:
    return f'{{"items":{items},"total":{total},"limit":{limit},"offset":{offset}}}'.encode()


async def page_json(conn: AsyncConnection, caller: Caller, status: str, limit: int, offset: int) -> bytes:
    """The list-tasks response body; raises Revoked when the caller's session has ended."""
    if conn.dialect.name != "postgresql":
        if not await session_is_current(conn, caller):
            raise Revoked
        page, total = await tools.query_tasks(conn, caller.user_id, status, limit=limit, offset=offset)
        return _document(json.dumps(page, separators=(",", ":")), total, limit, offset)
    row = (await conn.exec_driver_sql(
        _PAGE_SQL, {"uid": caller.user_id, "status": status, "limit": limit, "offset": offset}
    )).first()
    if row is None or row[0] != caller.token_version:
        raise Revoked
    items, count = row[1], int(row[2])
    total = count if offset == 0 and count < limit else await _total(conn, caller.user_id, status)
    return _document(items, total, limit, offset)
