"""Same-origin JSON API for the page's JavaScript, forwarded server-side to the backend.

Every route takes the user from the session, calls ``BACKEND_URL/api/{user_id}/...``
with ``Authorization: Bearer <token>`` and relays the status and JSON body.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from .csrf import CSRF_FIELD, FORM_TYPES, csrf_token, form_fields, require_csrf
from .session import current_user, sign_out

log = logging.getLogger("todo_web.proxy")

UNREACHABLE = (
    "The task service is unreachable right now. Your data is safe — try again in a moment."
)
EXPIRED = "Your session expired — sign in again."
NOT_SIGNED_IN = "You are not signed in — sign in first."
BAD_GATEWAY = "The task service sent an unexpected answer (HTTP {status}). Try again."


# A request id we pass on: short and plain. Anything else (non-ASCII, huge) is ignored.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


class BackendUnavailable(Exception):
    """The backend could not be reached or did not answer in time."""


async def backend_request(
    request: Request,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    params: dict[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """One call to the backend through the shared client; raises BackendUnavailable."""
    client: httpx.AsyncClient = request.app.state.http
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request_id = request.headers.get("x-request-id", "")
    if REQUEST_ID.fullmatch(request_id):
        headers["X-Request-ID"] = request_id
    address = client_address(request)
    if address:  # the backend throttles sign-ins per client address, not per frontend pod
        headers["X-Forwarded-For"] = address
    kwargs: dict[str, Any] = {"headers": headers, "params": params}
    if json_body is not None:
        kwargs["json"] = json_body
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        return await client.request(method, path, **kwargs)
    except (httpx.TransportError, httpx.TimeoutException) as error:
        log.warning("backend unreachable: %s %s (%s)", method, path, type(error).__name__)
        raise BackendUnavailable(str(type(error).__name__)) from error


def detail_of(response: httpx.Response, fallback: str) -> str:
    """The backend's ``detail`` as one readable sentence."""
    try:
        body = response.json()
    except ValueError:
        return fallback
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:  # FastAPI-style validation list
        first = detail[0]
        if isinstance(first, dict) and first.get("msg"):
            field = ".".join(str(p) for p in first.get("loc", [])[1:]) or "input"
            return f"{field}: {first['msg']}"
    return fallback


def relay(response: httpx.Response) -> Response:
    """Pass the backend's status and JSON body through unchanged."""
    if response.status_code == 204 or not response.content:
        return Response(status_code=response.status_code)
    try:
        body = response.json()
    except ValueError:
        status = response.status_code if response.status_code >= 400 else 502
        return JSONResponse(
            {"detail": BAD_GATEWAY.format(status=response.status_code)}, status_code=status
        )
    retry = response.headers.get("retry-after")  # 429 / 503: tell the browser when to try again
    return JSONResponse(body, status_code=response.status_code,
                        headers={"Retry-After": retry} if retry and retry.isdigit() else None)


def _form_as_json(fields: dict[str, str]) -> dict[str, Any]:
    """A form posted to a JSON route (the documented csrf_token form-field path): its fields
    become the JSON body, "true"/"false" become booleans, the CSRF field is dropped."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == CSRF_FIELD:
            continue
        out[key] = {"true": True, "false": False}.get(value.lower(), value) if key == "completed" else value
    return out


async def _read_json(request: Request) -> Any:
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        return _form_as_json(await form_fields(request)) or None
    body = await request.body()
    if not body.strip():
        return None
    try:
        return await request.json()
    except ValueError:
        return ...


async def forward(
    request: Request,
    method: str,
    subpath: str,
    *,
    with_body: bool = False,
    params: dict[str, str] | None = None,
) -> Response:
    """Forward to ``/api/{user_id}/{subpath}`` as the signed-in user."""
    user = current_user(request.session)
    if user is None:
        return JSONResponse({"detail": NOT_SIGNED_IN}, status_code=401)
    user_id, token, _ = user
    body = None
    if with_body:
        body = await _read_json(request)
        if body is ...:
            return JSONResponse({"detail": "The request body is not valid JSON."}, 400)
    path = f"/api/{quote(user_id, safe='')}/{subpath}"
    try:
        response = await backend_request(
            request, method, path, token=token, json_body=body, params=params
        )
    except BackendUnavailable:
        return JSONResponse({"detail": UNREACHABLE}, status_code=503)
    if response.status_code == 401:
        sign_out(request.session)
        return JSONResponse({"detail": EXPIRED}, status_code=401)
    return relay(response)


def _seg(value: str) -> str:
    return quote(value, safe="")


router = APIRouter(prefix="/api")
mutating = [Depends(require_csrf)]


@router.get("/session")
async def session_info(request: Request) -> dict[str, Any]:
    """Who is signed in, plus the CSRF token for this session (creates the cookie)."""
    user = current_user(request.session)
    return {
        "authenticated": user is not None,
        "username": user[2] if user else None,
        "csrf_token": csrf_token(request.session),
    }


@router.get("/meta")
async def meta(request: Request) -> Response:
    try:
        response = await backend_request(request, "GET", "/api/meta", timeout=5.0)
    except BackendUnavailable:
        return JSONResponse({"detail": UNREACHABLE}, status_code=503)
    return relay(response)


@router.get("/tasks")
async def list_tasks(request: Request) -> Response:
    allowed = {"status", "limit", "offset"}
    params = {k: v for k, v in request.query_params.items() if k in allowed}
    return await forward(request, "GET", "tasks", params=params)


@router.post("/tasks", dependencies=mutating)
async def create_task(request: Request) -> Response:
    return await forward(request, "POST", "tasks", with_body=True)


@router.get("/tasks/{task_id}")
async def get_task(request: Request, task_id: str) -> Response:
    return await forward(request, "GET", f"tasks/{_seg(task_id)}")


@router.put("/tasks/{task_id}", dependencies=mutating)
async def update_task(request: Request, task_id: str) -> Response:
    return await forward(request, "PUT", f"tasks/{_seg(task_id)}", with_body=True)


@router.delete("/tasks/{task_id}", dependencies=mutating)
async def delete_task(request: Request, task_id: str) -> Response:
    return await forward(request, "DELETE", f"tasks/{_seg(task_id)}")


@router.patch("/tasks/{task_id}/complete", dependencies=mutating)
async def complete_task(request: Request, task_id: str) -> Response:
    return await forward(request, "PATCH", f"tasks/{_seg(task_id)}/complete", with_body=True)


@router.post("/chat", dependencies=mutating)
async def chat(request: Request) -> Response:
    return await forward(request, "POST", "chat", with_body=True)


@router.get("/conversations")
async def conversations(request: Request) -> Response:
    return await forward(request, "GET", "conversations")


@router.get("/conversations/{conversation_id}/messages")
async def messages(request: Request, conversation_id: str) -> Response:
    return await forward(request, "GET", f"conversations/{_seg(conversation_id)}/messages")
