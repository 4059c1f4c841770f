"""Stateless chat: history is read from the database on every request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlmodel import Session, col, select

from todo_api.agents import AgentError
from todo_api.db import get_session
from todo_api.models import Conversation, Message, utcnow
from todo_api.routes.schemas import ChatIn, ChatOut, ConversationOut, IdPath, MessageOut
from todo_api.security import authorized_user

router = APIRouter(prefix="/api/{user_id}", tags=["chat"])
HISTORY_LIMIT = 40
TITLE_CHARS = 60


def _conversation(session: Session, user_id: int, conversation_id: int) -> Conversation:
    conv = session.exec(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user_id)
    ).first()
    if conv is None:
        raise HTTPException(404, f"Conversation {conversation_id} not found")
    return conv


@router.post("/chat", response_model=ChatOut)
async def chat(
    body: ChatIn, request: Request, user_id: int = Depends(authorized_user), session: Session = Depends(get_session)
) -> Any:
    conv = _conversation(session, user_id, body.conversation_id) if body.conversation_id is not None else None
    history: list[tuple[str, str]] = []
    if conv is not None:
        rows = session.exec(
            select(Message).where(Message.conversation_id == conv.id).order_by(col(Message.id).desc()).limit(HISTORY_LIMIT)
        ).all()
        history = [(m.role, m.content) for m in reversed(rows)]
    try:
        result = await request.app.state.agent.respond(session, user_id, history, body.message)
    except AgentError as exc:
        session.rollback()
        raise HTTPException(
            502, f"The assistant could not answer: {exc}. Your message was not sent; try again."
        ) from None
    if conv is None:
        conv = Conversation(user_id=user_id)
        session.add(conv)
        session.flush()
    assert conv.id is not None
    now = utcnow()
    conv.updated_at = now
    session.add(conv)
    session.add(Message(conversation_id=conv.id, user_id=user_id, role="user", content=body.message, created_at=now))
    session.add(Message(conversation_id=conv.id, user_id=user_id, role="assistant", content=result.response,
                        created_at=utcnow()))
    session.commit()
    return {"conversation_id": conv.id, "response": result.response, "tool_calls": result.tool_calls}


@router.get("/conversations", response_model=list[ConversationOut])
def conversations(user_id: int = Depends(authorized_user), session: Session = Depends(get_session)) -> Any:
    convs = session.exec(
        select(Conversation).where(Conversation.user_id == user_id).order_by(
            col(Conversation.updated_at).desc(), col(Conversation.id).desc()
        ).limit(200)
    ).all()
    out = []
    for conv in convs:
        first = session.exec(
            select(Message.content).where(Message.conversation_id == conv.id, Message.role == "user")
            .order_by(col(Message.id)).limit(1)
        ).first()
        title = (first or "New conversation").strip().replace("\n", " ")
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1].rstrip() + "…"
        out.append({"id": conv.id, "title": title, "created_at": conv.created_at, "updated_at": conv.updated_at})
    return out


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageOut])
def messages(
    conversation_id: IdPath, user_id: int = Depends(authorized_user), session: Session = Depends(get_session)
) -> Any:
    conv = _conversation(session, user_id, conversation_id)
    return session.exec(select(Message).where(Message.conversation_id == conv.id).order_by(col(Message.id))).all()
