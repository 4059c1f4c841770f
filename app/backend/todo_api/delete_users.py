"""`python -m todo_api delete-users NAME...`: removes the named users and everything they own
(tasks, conversations, messages, idempotency keys), in one transaction, through the app's own
tables (models.py). Prints how many users it removed on its last line; a name with no user is
no error. Which names may be removed is the caller's business (verify passes only its own)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from todo_api.db import make_engine
from todo_api.models import conversations, idempotency_keys, messages, tasks, users


def delete_users(database_url: str, names: list[str]) -> int:
    if not names:
        return 0
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            return delete_named(conn, names)
    finally:
        engine.dispose()


def delete_named(conn: Connection, names: list[str]) -> int:
    rows = conn.execute(sa.select(users.c.id, users.c.username).where(users.c.username.in_(names))).all()
    ids = [row.id for row in rows]
    if not ids:
        return 0
    # Children before their parents: messages name conversations, everything names the user.
    for table in (messages, conversations, tasks):
        conn.execute(sa.delete(table).where(table.c.user_id.in_(ids)))
    scopes = [f"user:{user_id}" for user_id in ids] + [f"signup:{row.username.lower()}" for row in rows]
    conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.scope.in_(scopes)))
    conn.execute(sa.delete(users).where(users.c.id.in_(ids)))
    return len(ids)
