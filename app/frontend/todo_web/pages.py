"""Server-rendered pages: the sign-in / sign-up page, the app shell, sign-out."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.routing import Match

from .csrf import csrf_token, require_csrf, rotate_csrf
from .proxy import UNREACHABLE, BackendUnavailable, backend_request, detail_of
from .session import current_user, sign_in, sign_out

router = APIRouter()

LLM_HINT = (
    "Set OPENAI_API_KEY (and OPENAI_BASE_URL / LLM_MODEL for Gemini, Groq or Ollama) and redeploy"
)
FRIENDLY = {
    401: "Wrong username or password.",
    409: "That username is already taken — pick another one.",
    429: "Too many attempts. Wait a little and try again.",
    422: "Please check the username and password.",
}


def templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


META_TTL_S = 5.0  # the assistant's description changes only with a redeploy


async def probe_backend(request: Request) -> dict[str, Any]:
    """Describes the assistant or says the backend is unreachable. A good answer is reused for
    a few seconds (every page render asked before: half the backend calls of a page)."""
    cached = getattr(request.app.state, "meta_probe", None)
    if cached is not None and time.monotonic() - cached[0] < META_TTL_S:
        return dict(cached[1])
    answer = await _ask_meta(request)
    if answer["reachable"]:
        request.app.state.meta_probe = (time.monotonic(), answer)
    return answer


async def _ask_meta(request: Request) -> dict[str, Any]:
    try:
        response = await backend_request(request, "GET", "/api/meta", timeout=3.0)
    except BackendUnavailable:
        return {"reachable": False, "mode": None}
    if response.status_code >= 500:
        return {"reachable": False, "mode": None}
    try:
        agent = response.json().get("agent") or {}
    except (ValueError, AttributeError):
        agent = {}
    provider = agent.get("provider")
    model = agent.get("model")
    if provider and provider != "offline":
        mode = f"LLM: {model or provider}"
        online = True
    else:
        mode = "Offline assistant"
        online = False
    return {"reachable": True, "mode": mode, "llm": online}


def render_auth(
    request: Request,
    *,
    mode: str,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    backend: dict[str, Any] | None = None,
) -> Response:
    context = {
        "mode": mode,
        "error": error,
        "username": username,
        "csrf_token": csrf_token(request.session),
        "backend": backend or {"reachable": True, "mode": None},
        "unreachable_message": UNREACHABLE,
        "llm_hint": LLM_HINT,
    }
    return templates(request).TemplateResponse(
        request, "auth.html", context, status_code=status, headers={"Cache-Control": "no-store"}
    )


async def session_revoked(request: Request, token: str) -> bool:
    """True when the backend says this token's session has ended (signed out elsewhere,
    expired, or a replayed cookie from before a sign-out). Unreachable: not revoked."""
    try:
        response = await backend_request(request, "GET", "/api/auth/session", token=token, timeout=3.0)
    except BackendUnavailable:
        return False
    return response.status_code == 401


@router.get("/")
async def index(request: Request) -> Response:
    user = current_user(request.session)
    if user is None:
        backend = await probe_backend(request)
    else:  # both questions at once
        backend, revoked = await asyncio.gather(probe_backend(request), session_revoked(request, user[1]))
        if revoked and backend["reachable"]:
            sign_out(request.session)
            user = None
    if user is None:
        return render_auth(request, mode="login", backend=backend)
    _, _, username = user
    context = {
        "username": username,
        "csrf_token": csrf_token(request.session),
        "backend": backend,
        "unreachable_message": UNREACHABLE,
        "llm_hint": LLM_HINT,
    }
    return templates(request).TemplateResponse(
        request, "app.html", context, headers={"Cache-Control": "no-store"}
    )


@router.get("/login")
async def login_page(request: Request) -> Response:
    if current_user(request.session):
        return RedirectResponse("/", status_code=303)
    return render_auth(request, mode="login", backend=await probe_backend(request))


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    if current_user(request.session):
        return RedirectResponse("/", status_code=303)
    return render_auth(request, mode="signup", backend=await probe_backend(request))


async def _credentials(request: Request) -> tuple[str, str]:
    form = await request.form()
    username = form.get("username")
    password = form.get("password")
    return (
        username.strip() if isinstance(username, str) else "",
        password if isinstance(password, str) else "",
    )


async def _authenticate(request: Request, mode: str) -> Response:
    username, password = await _credentials(request)
    if not username or not password:
        return render_auth(
            request,
            mode=mode,
            status=422,
            error="Enter a username and a password.",
            username=username,
        )
    path = "/api/auth/signup" if mode == "signup" else "/api/auth/login"
    try:
        response = await backend_request(
            request, "POST", path, json_body={"username": username, "password": password}
        )
    except BackendUnavailable:
        return render_auth(
            request,
            mode=mode,
            status=503,
            error=UNREACHABLE,
            username=username,
            backend={"reachable": False, "mode": None},
        )
    if response.status_code in (200, 201):
        try:
            body = response.json()
            token, user_id = body["token"], body["user_id"]
            name = body.get("username") or username
        except (ValueError, KeyError, TypeError):
            return render_auth(
                request, mode=mode, status=502, error="The task service sent a bad answer."
            )
        sign_in(request.session, token=str(token), user_id=str(user_id), username=str(name))
        rotate_csrf(request.session)  # a token seen before signing in is worthless after
        return RedirectResponse("/", status_code=303)
    status = response.status_code
    if status == 429:
        retry = response.headers.get("retry-after", "")
        page = render_auth(request, mode=mode, status=429,
                           error=detail_of(response, FRIENDLY[429]), username=username)
        if retry.isdigit():
            page.headers["Retry-After"] = retry
        return page
    if status == 401:
        error = FRIENDLY[401]
    elif status in (409, 422):
        error = detail_of(response, FRIENDLY[status])
    elif status >= 500:
        error = detail_of(response, "The task service had a problem. Try again in a moment.")
    else:
        error = detail_of(response, "Something went wrong. Try again.")
    return render_auth(request, mode=mode, status=status, error=error, username=username)


@router.post("/login", dependencies=[Depends(require_csrf)])
async def login(request: Request) -> Response:
    return await _authenticate(request, "login")


@router.post("/signup", dependencies=[Depends(require_csrf)])
async def signup(request: Request) -> Response:
    return await _authenticate(request, "signup")


@router.post("/logout", dependencies=[Depends(require_csrf)])
async def logout(request: Request) -> Response:
    """Ends the session on the backend too: the token (and so any copy of this cookie) is refused after."""
    user = current_user(request.session)
    if user is not None:
        try:
            await backend_request(request, "POST", "/api/auth/logout", token=user[1], timeout=5.0)
        except BackendUnavailable:
            pass  # the cookie is cleared anyway; the token then lapses at its expiry
    sign_out(request.session)
    rotate_csrf(request.session)
    return RedirectResponse("/", status_code=303)


def _routed(request: Request, path: str) -> bool:
    scope = {**request.scope, "path": path, "method": "GET"}
    return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)


@router.get("/{path:path}/", include_in_schema=False)
async def drop_slash(request: Request, path: str) -> Response:
    """GET /login/ → /login. Starlette's own slash redirect (switched off in server.py) names
    the Host header's host in Location; this one sends only the path, so a forged Host cannot
    turn it into a redirect elsewhere."""
    target = request.scope["path"].rstrip("/")
    # "//host" or "/\\host" would be read by a browser as another site.
    if not target or target[1:2] in ("/", "\\") or not _routed(request, target):
        raise HTTPException(status_code=404, detail="Not Found")
    location = quote(target, safe="/:@!$&'()*+,;=-._~")
    query = request.scope.get("query_string", b"")
    if query:
        location += "?" + query.decode("latin-1")
    return RedirectResponse(location, status_code=307)
