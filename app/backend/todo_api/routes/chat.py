"""Stateless chat: history is read from the database on every request.

A chat turn is one transaction: the agent's tool calls and the two stored messages are
committed together, or (the model failed) nothing is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.agents import AgentError
from todo_api.models import conversations, messages, utcnow
from todo_api.routes.schemas import ChatIn, ChatOut, ConversationOut, IdPath, MessageOut
from todo_api.security import authorized, require_current

router = APIRouter(prefix="/api/{user_id}", tags=["chat"])
HISTORY_LIMIT = 40
TITLE_CHARS = 60
ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 502: {}, 503: {}}


async def _conversation(conn: AsyncConnection, user_id: int, conversation_id: int) -> int:
    found = (await conn.execute(
        select(conversations.c.id).where(conversations.c.id == conversation_id, conversations.c.user_id == user_id)
    )).scalar()
    if found is None:
        raise HTTPException(404, f"Conversation {conversation_id} not found")
    return int(found)


@router.post("/chat", response_model=ChatOut, responses=ERRORS)
async def chat(body: ChatIn, request: Request, user_id: IdPath) -> Any:
    caller = authorized(request, user_id)
    async with request.app.state.db.write() as conn:
        await require_current(conn, caller)
        conv_id = await _conversation(conn, user_id, body.conversation_id) if body.conversation_id else None
        history: list[tuple[str, str]] = []
        if conv_id is not None:
            rows = (await conn.execute(
                select(messages.c.role, messages.c.content).where(messages.c.conversation_id == conv_id)
                .order_by(messages.c.id.desc()).limit(HISTORY_LIMIT)
            )).all()
            history = [(r.role, r.content) for r in reversed(rows)]
        try:
            result = await request.app.state.agent.respond(conn, user_id, history, body.message)
        except AgentError as exc:
            raise HTTPException(
                502, f"The assistant could not answer: {exc}. Your message was not sent; try again."
            ) from None  # leaving the block rolls the tool calls back
        now = utcnow()
        if conv_id is None:
            conv_id = (await conn.execute(
                insert(conversations).values(user_id=user_id, created_at=now, updated_at=now)
                .returning(conversations.c.id)
            )).scalar_one()
        else:
            await conn.execute(update(conversations).where(conversations.c.id == conv_id).values(updated_at=now))
        await conn.execute(insert(messages), [
            {"conversation_id": conv_id, "user_id": user_id, "role": "user", "content": body.message,
             "created_at": now},
            {"conversation_id": conv_id, "user_id": user_id, "role": "assistant", "content": result.response,
             "created_at": utcnow()},
        ])
    return {"conversation_id": conv_id, "response": result.response, "tool_calls": result.tool_calls}


@router.get("/conversations", response_model=list[ConversationOut], responses=ERRORS)
async def list_conversations(request: Request, user_id: IdPath) -> Any:
    caller = authorized(request, user_id)
    first_message = (
        select(messages.c.content)
        .where(messages.c.conversation_id == conversations.c.id, messages.c.role == "user")
        .order_by(messages.c.id).limit(1).scalar_subquery()
    )
    async with request.app.state.db.read() as conn:
        await require_current(conn, caller)
        rows = (await conn.execute(
            select(conversations.c.id, conversations.c.created_at, conversations.c.updated_at,
                   first_message.label("first"))
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
async def list_messages(request: Request, user_id: IdPath, conversation_id: IdPath) -> Any:
    caller = authorized(request, user_id)
    async with request.app.state.db.read() as conn:
        await require_current(conn, caller)
        conv_id = await _conversation(conn, user_id, conversation_id)
        rows = (await conn.execute(
            select(messages.c.id, messages.c.role, messages.c.content, messages.c.created_at)
            .where(messages.c.conversation_id == conv_id).order_by(messages.c.id)
        )).all()
    return [dict(r._mapping) for r in rows]
