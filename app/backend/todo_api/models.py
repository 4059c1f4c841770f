"""Database tables."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
ID_MAX = 2_147_483_647  # ids are 32-bit integer columns
DESCRIPTION_MAX = 1000
MESSAGE_MAX = 4000


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=sa.Column(sa.String(32), unique=True, nullable=False))
    password_hash: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (sa.Index("ix_tasks_user_id_id", "user_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", nullable=False)
    title: str = Field(sa_column=sa.Column(sa.String(TITLE_MAX), nullable=False))
    description: str = Field(default="", sa_column=sa.Column(sa.String(DESCRIPTION_MAX), nullable=False))
    completed: bool = Field(default=False, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, nullable=False)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (sa.Index("ix_conversations_user_id_id", "user_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", nullable=False)
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, nullable=False)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (sa.Index("ix_messages_conversation_id_id", "conversation_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", nullable=False)
    user_id: int = Field(foreign_key="users.id", nullable=False)
    role: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    content: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
