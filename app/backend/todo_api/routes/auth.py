"""Sign-up and sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from todo_api.db import get_session
from todo_api.models import User
from todo_api.routes.schemas import AuthOut, Credentials, LoginIn
from todo_api.security import hash_password, issue_token, verify_password

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/signup", status_code=201, response_model=AuthOut)
def signup(body: Credentials, request: Request, session: Session = Depends(get_session)) -> AuthOut:
    taken = HTTPException(409, f"Username '{body.username}' is already taken")
    if session.exec(select(User).where(User.username == body.username)).first():
        raise taken
    user = User(username=body.username, password_hash=hash_password(body.password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise taken from None
    assert user.id is not None
    return AuthOut(user_id=user.id, username=user.username, token=issue_token(user.id, request.app.state.settings))


@router.post("/login", response_model=AuthOut)
def login(body: LoginIn, request: Request, session: Session = Depends(get_session)) -> AuthOut:
    user = session.exec(select(User).where(User.username == body.username)).first()
    if not verify_password(body.password, user.password_hash if user else None) or user is None or user.id is None:
        raise HTTPException(401, "Wrong username or password")
    return AuthOut(user_id=user.id, username=user.username, token=issue_token(user.id, request.app.state.settings))
