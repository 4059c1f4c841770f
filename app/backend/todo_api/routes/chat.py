"""Stateless chat: history is read from the database on every request.

A turn never holds a database connection while the model thinks (a real model takes
seconds): (1) one short read checks the session and the conversation and takes the last
HISTORY_LIMIT messages; (2) the agent runs with no connection held, each tool call taking a
pooled connection for its own short statement or transaction; (3) one last short
transaction stores the turn, after checking again that the session is current. Tool calls
are committed as they run: when the model then fails (502) or misses the deadline, what
they changed stays changed and the turn is not stored. (A turn used to be one transaction,
which held a connection and its row locks for the whole model call.)

Bounds: chats in flight per user and in all in this process (429 + Retry-After; never
queued), the agent's deadline (LLM_TIMEOUT_SECONDS, 502), the reply (REPLY_MAX characters)
and the tool calls echoed (TOOL_CALLS_ECHOED, listings cut to ECHOED_TASKS tasks' id, title
and state), conversations per user and messages per
conversation (409), and the messages listed per request (a page, oldest of it first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api import idempotency
from todo_api.agents import AgentError, AgentResult, ChatAgent
from todo_api.db import Database
from todo_api.deps import AgentDep, ChatSlots, CurrentUser, DatabaseDep, SettingsDep
from todo_api.models import ID_MAX, conversations, messages, users, utcnow
from todo_api.routes.schemas import ChatIn, ChatOut, ConversationOut, IdPath, MessageOut
from todo_api.security import REVOKED, Caller, require_current, unauthorized
from todo_api.settings import Settings
from todo_api.tools import LimitReached

router = APIRouter(prefix="/api/{user_id}", tags=["chat"])
HISTORY_LIMIT = 40
TITLE_CHARS = 60
REPLY_MAX = 8_000  # characters of an assistant reply returned and stored; "…" marks a cut
TOOL_CALLS_ECHOED = 10  # tool calls a chat response lists
ECHOED_TASKS = 10  # tasks of a listing a chat response echoes, id/title/completed only (count says how many)
MESSAGES_PAGE, MESSAGES_PAGE_MAX = 100, 200
# Tells the client that older messages exist: ask again with ?before=<this id>.
OLDER_HEADER = "X-Older-Before"
RETRY_AFTER_SECONDS = 5
ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}, 429: {}, 502: {}, 503: {}}
NOT_SENT = "Your message was not sent; try again."


class InFlight:
    """Chats being answered in this process, per user and in all. Never waits: past a limit a
    chat is refused at once, so no request queues behind a slow model. (Single event loop:
    nothing awaits between the check and the count.)"""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self.by_user: dict[int, int] = {}
        self.running = 0

    @contextmanager
    def slot(self, user_id: int) -> Iterator[None]:
        if self.by_user.get(user_id, 0) >= self.per_user:
            raise _busy(f"You already have {self.per_user} messages being answered (the limit); "
                        "wait for their answers, then try again")
        if self.running >= self.total:
            raise _busy(f"The assistant is answering as many chats as it can ({self.total}); try again shortly")
        self.by_user[user_id] = self.by_user.get(user_id, 0) + 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            left = self.by_user[user_id] - 1
            if left:
                self.by_user[user_id] = left
            else:
                del self.by_user[user_id]


def _busy(detail: str) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def in_flight(settings: Settings) -> InFlight:
    """The process's chat slots (create_app makes them once)."""
    total = settings.chat_max_in_flight or max(1, settings.db_pool_size // 2)
    return InFlight(settings.chat_per_user_in_flight, total)


def capped(text: str, limit: int = REPLY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stored_content() -> Any:
    """A message's content as read back: at most REPLY_MAX + 1 characters leave the database
    (capped() then marks the cut), so rows stored before the cap cannot blow up a reply."""
    return func.substr(messages.c.content, 1, REPLY_MAX + 1).label("content")


def echoed(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls a chat response shows: the first TOOL_CALLS_ECHOED, a listing cut to its
    first ECHOED_TASKS tasks' id, title and state (the page itself went to the model)."""
    return [_echo(call) for call in calls[:TOOL_CALLS_ECHOED]]


def _echo(call: dict[str, Any]) -> dict[str, Any]:
    result = call.get("result")
    if isinstance(result, dict) and isinstance(result.get("tasks"), list):
        tasks = [{key: task.get(key) for key in ("id", "title", "completed")}
                 for task in result["tasks"][:ECHOED_TASKS] if isinstance(task, dict)]
        return {**call, "result": {**result, "tasks": tasks}}
    return call


async def _conversation(conn: AsyncConnection, user_id: int, conversation_id: int) -> int:
    found = (await conn.execute(
        select(conversations.c.id).where(conversations.c.id == conversation_id, conversations.c.user_id == user_id)
    )).scalar()
    if found is None:
        raise HTTPException(404, f"Conversation {conversation_id} not found")
    return int(found)


async def _check_room(conn: AsyncConnection, user_id: int, conv_id: int | None, settings: Settings) -> None:
    """409 when the turn would pass a quota: a new conversation past the user's limit, or two
    more messages past the conversation's."""
    if conv_id is None:
        limit = settings.max_conversations_per_user
        count = (await conn.execute(
            select(func.count()).select_from(conversations).where(conversations.c.user_id == user_id))).scalar_one()
        if count >= limit:
            raise LimitReached(f"You have reached the limit of {limit} conversations; "
                               "continue one of them instead of starting a new one")
        return
    limit = settings.max_messages_per_conversation
    count = (await conn.execute(
        select(func.count()).select_from(messages).where(messages.c.conversation_id == conv_id))).scalar_one()
    if count + 2 > limit:
        raise LimitReached(f"This conversation has reached the limit of {limit} messages; start a new conversation")


async def _read_turn(db: Database, caller: Caller, conversation_id: int | None,
                     settings: Settings) -> tuple[int | None, list[tuple[str, str]]]:
    """The session check, the conversation and its last HISTORY_LIMIT messages (one short read)."""
    async with db.read() as conn:
        await require_current(conn, caller)
        conv_id = await _conversation(conn, caller.user_id, conversation_id) if conversation_id else None
        await _check_room(conn, caller.user_id, conv_id, settings)
        if conv_id is None:
            return None, []
        rows = (await conn.execute(
            select(messages.c.role, stored_content()).where(messages.c.conversation_id == conv_id)
            .order_by(messages.c.id.desc()).limit(HISTORY_LIMIT)
        )).all()
    return conv_id, [(r.role, capped(r.content)) for r in reversed(rows)]


async def _answer(agent: ChatAgent, db: Database, user_id: int, history: list[tuple[str, str]], message: str,
                  deadline: float) -> AgentResult:
    """The agent's answer within `deadline` seconds (whichever agent), else 502."""
    try:
        return await asyncio.wait_for(agent.respond(db, user_id, history, message), timeout=deadline)
    except TimeoutError:
        reason = f"it did not answer within {deadline:g} seconds"
    except AgentError as exc:
        reason = str(exc)
    raise HTTPException(502, f"The assistant could not answer: {reason}. {NOT_SENT}")


async def _store_turn(db: Database, caller: Caller, conv_id: int | None, message: str, reply: str,
                      settings: Settings) -> int:
    """One short transaction: the session still current (the user's row locked, so a sign-out
    or another turn waits for it), the conversation created or bumped, both messages stored."""
    user_id = caller.user_id
    async with db.write() as conn:
        version = (await conn.execute(
            select(users.c.token_version).where(users.c.id == user_id).with_for_update())).scalar()
        if version is None or version != caller.token_version:
            raise unauthorized(REVOKED)
        await _check_room(conn, user_id, conv_id, settings)
        now = utcnow()
        if conv_id is None:
            conv_id = (await conn.execute(
                insert(conversations).values(user_id=user_id, created_at=now, updated_at=now)
                .returning(conversations.c.id)
            )).scalar_one()
        elif (await conn.execute(
            update(conversations).where(conversations.c.id == conv_id, conversations.c.user_id == user_id)
            .values(updated_at=now).returning(conversations.c.id)
        )).scalar() is None:
            raise HTTPException(404, f"Conversation {conv_id} not found")
        await conn.execute(insert(messages), [
            {"conversation_id": conv_id, "user_id": user_id, "role": "user", "content": message, "created_at": now},
            {"conversation_id": conv_id, "user_id": user_id, "role": "assistant", "content": reply,
             "created_at": utcnow()},
        ])
    return int(conv_id)


@router.post("/chat", response_model=ChatOut, responses={**ERRORS, **idempotency.ERRORS})
async def chat(body: ChatIn, request: Request, user_id: IdPath, caller: CurrentUser, db: DatabaseDep,
               agent: AgentDep, settings: SettingsDep, slots: ChatSlots,
               idempotency_key: idempotency.IdempotencyKey = None) -> Any:
    """With an Idempotency-Key, a retry (the reply was lost) gets the first turn's answer
    instead of a second turn: no tool runs twice."""
    key = idempotency.key_from(request)

    async def turn() -> tuple[int, Any]:
        with slots.slot(user_id):
            conv_id, history = await _read_turn(db, caller, body.conversation_id, settings)
            result = await _answer(agent, db, user_id, history, body.message, settings.llm_timeout_seconds)
            reply = capped(result.response)
            conv_id = await _store_turn(db, caller, conv_id, body.message, reply, settings)
        return 200, {"conversation_id": conv_id, "response": reply, "tool_calls": echoed(result.tool_calls)}

    if key is None:
        return (await turn())[1]
    fingerprint = idempotency.fingerprint(settings.auth_secret.get_secret_value(), "POST", request.url.path,
                                          body.model_dump(mode="json"))
    # The claim outlives the slowest turn the deadline allows, so a retry meanwhile gets 409.
    lease = timedelta(seconds=settings.llm_timeout_seconds + 30)
    outcome = await idempotency.replay_or_run(db, f"user:{user_id}", key, fingerprint, turn, lease=lease)
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers())


@router.get("/conversations", response_model=list[ConversationOut], responses=ERRORS)
async def list_conversations(user_id: IdPath, caller: CurrentUser, db: DatabaseDep) -> Any:
    first_message = (
        select(messages.c.content)
        .where(messages.c.conversation_id == conversations.c.id, messages.c.role == "user")
        .order_by(messages.c.id).limit(1).scalar_subquery()
    )
    async with db.read() as conn:
        await require_current(conn, caller)
        rows = (await conn.execute(
            select(conversations.c.id, conversations.c.created_at, conversations.c.updated_at,
                   func.substr(first_message, 1, TITLE_CHARS + 1).label("first"))
            .where(conversations.c.user_id == user_id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc()).limit(200)
        )).all()
    out = []
    for row in rows:
        title = (row.first or "New conversation").strip().replace("\n", " ")
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1].rstrip() + "…"
        out.append({"id": row.id, "title": title, "created_at": row.created_at, "updated_at": row.updated_at})
    return out


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageOut], responses=ERRORS)
async def list_messages(
    response: Response,
    user_id: IdPath,
    conversation_id: IdPath,
    caller: CurrentUser,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=MESSAGES_PAGE_MAX)] = MESSAGES_PAGE,
    before: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> Any:
    """The conversation's newest `limit` messages (older than message `before` when given),
    oldest first. When older ones exist, the OLDER_HEADER response header names the `before`
    to ask with for the previous page."""
    async with db.read() as conn:
        await require_current(conn, caller)
        conv_id = await _conversation(conn, user_id, conversation_id)
        where = [messages.c.conversation_id == conv_id]
        if before is not None:
            where.append(messages.c.id < before)
        rows = (await conn.execute(
            select(messages.c.id, messages.c.role, stored_content(), messages.c.created_at)
            .where(*where).order_by(messages.c.id.desc()).limit(limit + 1)
        )).all()
    page = rows[:limit]
    if len(rows) > limit:
        response.headers[OLDER_HEADER] = str(page[-1].id)
    return [{**r._mapping, "content": capped(r.content)} for r in reversed(page)]
