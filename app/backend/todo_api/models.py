"""Database tables (SQLAlchemy Core: the request path builds statements, never ORM objects)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

TITLE_MAX = 200
ID_MAX = 2_147_483_647  # ids and task numbers are 32-bit integer columns
DESCRIPTION_MAX = 1000
MESSAGE_MAX = 4000


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Unique case-insensitively: a unique index on lower(username) (migration 0002).
    sa.Column("username", sa.String(32), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    # Bumped by sign-out: every token carries the version it was issued under.
    sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
    # The last task number handed out to this user (task numbers start at 1 per user).
    sa.Column("task_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    # What users see and name: 1, 2, 3 ... per user. The primary key stays internal.
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("title", sa.String(TITLE_MAX), nullable=False),
    sa.Column("description", sa.String(DESCRIPTION_MAX), nullable=False, server_default=""),
    sa.Column("completed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("uq_tasks_user_number", "user_id", "number", unique=True),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_conversations_user_id_id", "user_id", "id"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("conversation_id", sa.Integer, sa.ForeignKey("conversations.id"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_messages_conversation_id_id", "conversation_id", "id"),
)

# Sign-in / sign-up throttling, shared by every backend replica. No foreign key: keys
# name a lower-cased username or a client address, whether or not an account exists.
auth_throttle = sa.Table(
    "auth_throttle",
    metadata,
    sa.Column("key", sa.String(96), primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
)

# Idempotency-Key: a claim taken before the work (status NULL while it runs), then the response
# it gave, replayed for a retry with the same key and request within a day (idempotency.py).
# `scope` is whose key it is: "user:<id>", or "signup:<username>" before there is a user.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(48), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("body", sa.Text, nullable=True),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)
