"""Request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from todo_api import tools
from todo_api.models import DESCRIPTION_MAX, ID_MAX, MESSAGE_MAX, TITLE_MAX

# An id in a URL: anything outside the column's range is a 422, not a database error.
IdPath = Annotated[int, Path(ge=1, le=ID_MAX)]


class PageQuery(BaseModel):
    """What a list-tasks request asks for: the path's user and the query string. The route
    validates it itself (FastAPI's per-parameter machinery costs more than the rest of the
    route); the same rules, the same 422s."""

    model_config = ConfigDict(extra="ignore")
    user_id: Annotated[int, Field(ge=1, le=ID_MAX)]
    status: Literal["all", "pending", "completed"] = "all"
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0, le=ID_MAX)] = 0

    @staticmethod
    def openapi_parameters() -> list[dict[str, Any]]:
        properties = PageQuery.model_json_schema()["properties"]
        return [{"name": name, "in": "path" if name == "user_id" else "query", "required": name == "user_id",
                 "schema": schema} for name, schema in properties.items()]


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return tools.clean_title(value)
    except tools.ToolError as exc:
        raise ValueError(str(exc).removeprefix("title: ")) from None


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return tools.clean_description(value)
    except tools.ToolError as exc:
        raise ValueError(str(exc).removeprefix("description: ")) from None


def _refuse_controls(allowed: str) -> AfterValidator:
    """Every string a client sends: no control characters (NUL, escapes, bidi overrides), bar
    `allowed`. PostgreSQL cannot store a NUL at all; the rest make text lie about itself."""

    def check(value: str) -> str:
        if tools.has_control_chars(value, allowed=allowed):
            raise ValueError("must not contain control characters")
        return value

    return AfterValidator(check)


def _refuse_nul(value: str) -> str:
    # Passwords are only ever hashed, never shown or stored as text, and a password manager may
    # generate any character: only NUL is refused (C strings and many tools end the text there).
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


PlainLine = _refuse_controls("")
Password = AfterValidator(_refuse_nul)


class Credentials(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    password: Annotated[str, Field(min_length=8, max_length=128), Password]


class LoginIn(BaseModel):
    username: Annotated[str, Field(max_length=64), PlainLine]
    password: Annotated[str, Field(max_length=256), Password]


class AuthOut(BaseModel):
    user_id: int
    username: str
    token: str


class SessionOut(BaseModel):
    user_id: int
    username: str


class TaskCreate(BaseModel):
    title: Annotated[str, Field(max_length=TITLE_MAX)]
    description: Annotated[str | None, Field(max_length=DESCRIPTION_MAX)] = None

    _t = field_validator("title")(_title)
    _d = field_validator("description")(_description)


class TaskUpdate(BaseModel):
    title: Annotated[str | None, Field(max_length=TITLE_MAX)] = None
    description: Annotated[str | None, Field(max_length=DESCRIPTION_MAX)] = None
    completed: bool | None = None

    _t = field_validator("title")(_title)
    _d = field_validator("description")(_description)


class CompleteIn(BaseModel):
    completed: bool = True


class TaskOut(BaseModel):
    id: int = Field(description="The task's number: 1, 2, 3 ... for each user")
    user_id: int
    title: str
    description: str
    completed: bool
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int


class ChatIn(BaseModel):
    conversation_id: Annotated[int, Field(ge=1, le=ID_MAX)] | None = None
    message: Annotated[str, Field(min_length=1, max_length=MESSAGE_MAX), _refuse_controls("\t\n\r")]

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ToolCallOut(BaseModel):
    name: str
    arguments: dict[str, object]
    result: dict[str, object]


class ChatOut(BaseModel):
    conversation_id: int
    response: str
    tool_calls: list[ToolCallOut]


class ConversationOut(BaseModel):
    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class MessageOut(BaseModel):
    id: int
    role: str
    content: str
    created_at: datetime
