"""Same-origin JSON API for the page's JavaScript, forwarded server-side to the backend.

Every route takes the user from the session, calls ``BACKEND_URL/api/{user_id}/...``
with ``Authorization: Bearer <token>`` and streams the backend's status and JSON body
back, never more than MAX_PROXY_BODY_BYTES of it and never holding it whole.
"""

from __future__ import annotations

import json
import logging
import math
import re
from itertools import accumulate
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from . import forwarded
from .csrf import CSRF_FIELD, FORM_TYPES, csrf_token, form_fields, require_csrf
from .session import current_user, sign_out

log = logging.getLogger("todo_web.proxy")

UNREACHABLE = (
    "The task service is unreachable right now. Your data is safe — try again in a moment."
)
EXPIRED = "Your session expired — sign in again."
NOT_SIGNED_IN = "You are not signed in — sign in first."
BAD_GATEWAY = "The task service sent an unexpected answer (HTTP {status}). Try again."
TOO_LARGE = "The task service's answer is too large to show ({size} bytes; the limit is {cap})."
NOT_JSON = "The request body is not valid JSON."
TOO_DEEP = "The request body is nested deeper than {depth} levels."
NOT_FINITE = "The request body holds a number that is not finite."

# What the frontend itself must parse (sign-in answers, error details, /api/meta): small.
SMALL_BODY_BYTES = 65_536
MAX_JSON_DEPTH = 64

# A request id we pass on: short and plain. Anything else (non-ASCII, huge) is ignored.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def client_address(request: Request) -> str:
    """The browser's address: the TCP peer, or what a trusted proxy says (forwarded.py)."""
    return forwarded.client_address(request.scope, request.app.state.settings.trusted_networks)


class BackendUnavailable(Exception):
    """The backend could not be reached or did not answer in time."""


def _backend_headers(request: Request, token: str | None) -> dict[str, str]:
    # identity: the Content-Length we relay is then the length of what we relay.
    headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request_id = request.headers.get("x-request-id", "")
    if REQUEST_ID.fullmatch(request_id):
        headers["X-Request-ID"] = request_id
    keys = request.headers.getlist("idempotency-key")
    if keys:  # passed on as sent: the backend checks it (a malformed or repeated one is its 400)
        headers["Idempotency-Key"] = keys[0] if len(keys) == 1 else ",".join(keys)
    address = client_address(request)
    if address:  # the backend's per-address limits count the browser, not this pod
        headers["X-Forwarded-For"] = address
    secret = request.app.state.settings.proxy_secret
    if secret is not None:
        headers["X-Proxy-Secret"] = secret.get_secret_value()
    return headers


async def open_backend(
    request: Request,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    params: dict[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """One call to the backend, its body not yet read: the caller reads or relays it and
    closes it. Raises BackendUnavailable."""
    client: httpx.AsyncClient = request.app.state.http
    kwargs: dict[str, Any] = {"headers": _backend_headers(request, token), "params": params}
    if json_body is not None:
        kwargs["json"] = json_body
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        return await client.send(client.build_request(method, path, **kwargs), stream=True)
    except (httpx.TransportError, httpx.TimeoutException) as error:
        log.warning("backend unreachable: %s %s (%s)", method, path, type(error).__name__)
        raise BackendUnavailable(str(type(error).__name__)) from error


def announced_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def read_capped(response: httpx.Response, cap: int) -> bytes | None:
    """The whole body when it is at most ``cap`` bytes, else None; closes the response."""
    try:
        length = announced_length(response)
        if length is not None and length > cap:
            return None
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                return None
        return bytes(body)
    finally:
        await response.aclose()


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
    """A backend call whose answer the frontend reads itself (at most SMALL_BODY_BYTES;
    a larger one comes back as a 502). Raises BackendUnavailable."""
    response = await open_backend(
        request, method, path, token=token, json_body=json_body, params=params, timeout=timeout
    )
    try:
        body = await read_capped(response, SMALL_BODY_BYTES)
    except (httpx.TransportError, httpx.TimeoutException) as error:
        raise BackendUnavailable(str(type(error).__name__)) from error
    if body is None:
        detail = TOO_LARGE.format(size="over " + str(SMALL_BODY_BYTES), cap=SMALL_BODY_BYTES)
        return httpx.Response(502, json={"detail": detail}, request=response.request)
    kept = {k: v for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")}
    return httpx.Response(response.status_code, headers=kept, content=body, request=response.request)


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


class CappedRelay(Response):
    """Streams an open backend response to the browser, chunk by chunk. Past ``cap`` bytes
    (only possible when the length was not announced) it stops without finishing the
    response, so the server closes the connection: the browser sees a failed request,
    never a truncated body that looks whole."""

    def __init__(self, upstream: httpx.Response, cap: int, headers: dict[str, str]) -> None:
        self.upstream = upstream
        self.cap = cap
        self.status_code = upstream.status_code
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = 0
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            async for chunk in self.upstream.aiter_bytes():
                sent += len(chunk)
                if sent > self.cap:
                    log.warning("backend answer over %d bytes: cut off (%s)", self.cap,
                                self.upstream.request.url.path)
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx.TransportError, httpx.TimeoutException) as error:
            log.warning("backend answer broke off: %s", type(error).__name__)
        finally:
            await self.upstream.aclose()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def relay(request: Request, upstream: httpx.Response) -> Response:
    """Pass the backend's status, content type, Retry-After and JSON body through, streamed."""
    status = upstream.status_code
    content_type = upstream.headers.get("content-type", "")
    length = announced_length(upstream)
    if status == 204 or length == 0:
        await upstream.aclose()
        return Response(status_code=status)
    retry = upstream.headers.get("retry-after", "")  # 429 / 503: tell the browser when to try again
    retry_header = {"Retry-After": retry} if retry.isdigit() else {}
    if not _is_json(content_type):
        await upstream.aclose()
        return JSONResponse({"detail": BAD_GATEWAY.format(status=status)},
                            status_code=status if status >= 400 else 502, headers=retry_header)
    cap: int = request.app.state.settings.max_proxy_body_bytes
    if length is not None and length > cap:
        await upstream.aclose()
        log.warning("backend answer of %d bytes refused (limit %d): %s", length, cap, upstream.request.url.path)
        return JSONResponse({"detail": TOO_LARGE.format(size=length, cap=cap)}, status_code=502)
    headers = {"Content-Type": content_type}
    if length is not None and "content-encoding" not in upstream.headers:
        headers["Content-Length"] = str(length)
    return CappedRelay(upstream, cap, headers | retry_header)


def _form_as_json(fields: dict[str, str]) -> dict[str, Any]:
    """A form posted to a JSON route (the documented csrf_token form-field path): its fields
    become the JSON body, "true"/"false" become booleans, the CSRF field is dropped."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == CSRF_FIELD:
            continue
        out[key] = {"true": True, "false": False}.get(value.lower(), value) if key == "completed" else value
    return out


class BadJson(ValueError):
    """A request body the frontend refuses (400) instead of passing on."""


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deep ``body`` nests arrays and objects, brackets inside strings not counted:
    linear in the body's size, and run before any parser recurses."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(1 if b in b"[{" else -1 for b in brackets), default=0)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(NOT_FINITE)
    return value


def _no_constants(name: str) -> Any:
    raise BadJson(NOT_FINITE)  # NaN, Infinity, -Infinity


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``, or BadJson with a sentence: too deep, not finite, garbled."""
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadJson(TOO_DEEP.format(depth=MAX_JSON_DEPTH))
    try:
        return json.loads(body, parse_float=_finite, parse_constant=_no_constants)
    except BadJson:
        raise
    except (ValueError, RecursionError):  # garbled UTF-8, syntax, huge integers
        raise BadJson(NOT_JSON) from None


async def _read_json(request: Request) -> Any:
    """The request's body as JSON (None when empty); raises BadJson."""
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        return _form_as_json(await form_fields(request)) or None
    body = await request.body()
    if not body.strip():
        return None
    return parse_json(body)


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
        try:
            body = await _read_json(request)
        except BadJson as error:
            return JSONResponse({"detail": str(error)}, status_code=400)
    path = f"/api/{quote(user_id, safe='')}/{subpath}"
    try:
        upstream = await open_backend(
            request, method, path, token=token, json_body=body, params=params
        )
    except BackendUnavailable:
        return JSONResponse({"detail": UNREACHABLE}, status_code=503)
    if upstream.status_code == 401:
        await upstream.aclose()
        sign_out(request.session)
        return JSONResponse({"detail": EXPIRED}, status_code=401)
    return await relay(request, upstream)


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in allowed}


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
        upstream = await open_backend(request, "GET", "/api/meta", timeout=5.0)
    except BackendUnavailable:
        return JSONResponse({"detail": UNREACHABLE}, status_code=503)
    return await relay(request, upstream)


@router.get("/tasks")
async def list_tasks(request: Request) -> Response:
    params = _query(request, {"status", "limit", "offset"})
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
    params = _query(request, {"limit", "before"})  # the newest page, or the one before a message id
    return await forward(request, "GET", f"conversations/{_seg(conversation_id)}/messages", params=params)
