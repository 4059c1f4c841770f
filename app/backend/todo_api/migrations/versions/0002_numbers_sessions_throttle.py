"""Per-user task numbers, case-insensitive usernames, token versions, auth throttling.

- tasks.number: 1, 2, 3 ... per user (existing tasks numbered in id order); users.task_seq
  holds the last number handed out.
- usernames unique case-insensitively (a unique index on lower(username)). Accounts that
  already differ only in case keep working: the oldest keeps its name, each later one is
  renamed to "<name>-<id>" (printed, so the operator can tell the people concerned).
- users.token_version: bumped by sign-out; tokens of an older version are refused.
- auth_throttle: failed sign-ins and sign-ups per username / client address.

Revision ID: 0002_numbers_sessions_throttle
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_numbers_sessions_throttle"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def _rename_case_duplicates() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, username FROM users ORDER BY id")).all()
    seen: set[str] = {name.lower() for _, name in rows}
    kept: set[str] = set()
    for user_id, name in rows:
        key = name.lower()
        if key not in kept:
            kept.add(key)
            continue
        suffix = f"-{user_id}"
        new = name[: 32 - len(suffix)] + suffix
        while new.lower() in seen:
            suffix += "x"
            new = name[: 32 - len(suffix)] + suffix
        seen.add(new.lower())
        conn.execute(sa.text("UPDATE users SET username = :new WHERE id = :id"), {"new": new, "id": user_id})
        print(f"migration 0002: username '{name}' (user {user_id}) differed from an older account only in case;"
              f" renamed to '{new}'")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("task_seq", sa.Integer, nullable=False, server_default="0"))
    _rename_case_duplicates()
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)

    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("number", sa.Integer, nullable=True))
    op.execute(
        "UPDATE tasks SET number = r.n FROM "
        "(SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS n FROM tasks) AS r "
        "WHERE tasks.id = r.id"
    )
    op.execute("UPDATE users SET task_seq = COALESCE((SELECT MAX(number) FROM tasks WHERE tasks.user_id = users.id), 0)")
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("number", existing_type=sa.Integer, nullable=False)
        batch.drop_index("ix_tasks_user_id_id")
        batch.create_index("uq_tasks_user_number", ["user_id", "number"], unique=True)

    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(96), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("auth_throttle")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("uq_tasks_user_number")
        batch.create_index("ix_tasks_user_id_id", ["user_id", "id"])
        batch.drop_column("number")
    op.drop_index("uq_users_username_lower", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("task_seq")
        batch.drop_column("token_version")
