"""Route tests against a real backend and a real frontend process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from todo_web.session import COOKIE_NAME, decode_session, encode_session, make_signer

from .conftest import (
    COMMON_DIR,
    FRONTEND_DIR,
    PASSWORD,
    SESSION_SECRET,
    FakeBackend,
    Proc,
    Scripted,
    WebClient,
    forged_client,
    start_frontend,
    unique_name,
)

EXPIRED = "Your session expired — sign in again."


def session_data(client: WebClient) -> dict:
    raw = client.http.cookies.get(COOKIE_NAME)
    return decode_session(make_signer(SESSION_SECRET), raw, max_age=3600)


def backend_login(backend: Proc, username: str) -> dict:
    response = httpx.post(
        f"{backend.url}/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------ pages & auth


def test_index_signed_out_is_sign_in_page(web: WebClient) -> None:
    response = web.http.get("/")
    assert response.status_code == 200
    assert 'action="/login"' in response.text
    assert 'href="/signup"' in response.text
    assert 'name="csrf_token"' in response.text
    assert "Offline assistant" in response.text


def test_healthz_and_readyz(web: WebClient) -> None:
    assert web.http.get("/healthz").status_code == 200
    assert web.http.get("/readyz").status_code == 200


def test_signup_signs_in_and_shows_app(web: WebClient) -> None:
    name = unique_name()
    response = web.signup(name)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    info = web.session()
    assert info == {"authenticated": True, "username": name, "csrf_token": web.csrf}
    page = web.http.get("/")
    assert page.status_code == 200
    assert 'id="composer"' in page.text and 'id="task-list"' in page.text
    assert name in page.text


def test_duplicate_username_is_409_with_message(web: WebClient) -> None:
    name = unique_name()
    assert web.signup(name).status_code == 303
    other = WebClient(str(web.http.base_url))
    response = other.signup(name)
    assert response.status_code == 409
    assert "already taken" in response.text
    assert 'role="alert"' in response.text
    other.close()


def test_invalid_signup_is_422_with_readable_message(web: WebClient) -> None:
    response = web.signup("ab", "x")
    assert response.status_code == 422
    assert 'data-testid="form-error"' in response.text
    assert "Traceback" not in response.text


def test_wrong_password_is_401_with_message(web: WebClient) -> None:
    name = unique_name()
    assert web.signup(name).status_code == 303
    web.form("/logout")
    response = web.login(name, "not-the-password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert web.session()["authenticated"] is False
    assert web.login(name).status_code == 303
    assert web.session()["authenticated"] is True


def test_logout_clears_session(signed_in: tuple[WebClient, str]) -> None:
    web, _ = signed_in
    response = web.form("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert web.session()["authenticated"] is False
    assert web.http.get("/api/tasks").status_code == 401
    assert 'action="/login"' in web.http.get("/").text


# ------------------------------------------------------------------ CSRF


@pytest.mark.parametrize("path", ["/login", "/signup", "/logout"])
@pytest.mark.parametrize("token", [None, "wrong-token-wrong-token"])
def test_form_posts_need_csrf(web: WebClient, path: str, token: str | None) -> None:
    web.session()
    data = {"username": unique_name(), "password": PASSWORD}
    if token:
        data["csrf_token"] = token
    response = web.http.post(path, data=data, headers={"Accept": "text/html"})
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_json_api_needs_csrf(signed_in: tuple[WebClient, str]) -> None:
    web, _ = signed_in
    created = web.api("POST", "/api/tasks", {"title": "csrf probe"})
    assert created.status_code == 201
    task_id = created.json()["id"]
    calls = [
        ("POST", "/api/tasks", {"title": "nope"}),
        ("PUT", f"/api/tasks/{task_id}", {"title": "nope"}),
        ("PATCH", f"/api/tasks/{task_id}/complete", {"completed": True}),
        ("DELETE", f"/api/tasks/{task_id}", None),
        ("POST", "/api/chat", {"message": "add a task to nope"}),
    ]
    for method, path, body in calls:
        for headers in ({}, {"X-CSRF-Token": "wrong-token-wrong-token"}):
            response = web.http.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, headers)
            assert "CSRF" in response.json()["detail"]
    titles = [t["title"] for t in web.api("GET", "/api/tasks").json()["items"]]
    assert titles == ["csrf probe"]


# ------------------------------------------------------------------ proxy


def test_proxy_forwards_the_users_token(frontend: Proc, backend: Proc) -> None:
    alice, bob = WebClient(frontend.url), WebClient(frontend.url)
    alice_name, bob_name = unique_name("alice"), unique_name("bob")
    assert alice.signup(alice_name).status_code == 303
    assert bob.signup(bob_name).status_code == 303

    created = alice.api("POST", "/api/tasks", {"title": "alice's secret", "description": "d"})
    assert created.status_code == 201, created.text
    task = created.json()

    # The task exists in the backend for alice, read with alice's own token.
    auth = backend_login(backend, alice_name)
    direct = httpx.get(
        f"{backend.url}/api/{auth['user_id']}/tasks/{task['id']}",
        headers={"Authorization": f"Bearer {auth['token']}"},
    )
    assert direct.status_code == 200 and direct.json()["title"] == "alice's secret"
    assert str(direct.json()["user_id"]) == str(auth["user_id"])

    # Bob cannot see it through the frontend, nor through the backend.
    assert bob.api("GET", "/api/tasks").json()["items"] == []
    assert bob.api("GET", f"/api/tasks/{task['id']}").status_code in (403, 404)
    bob_auth = backend_login(backend, bob_name)
    cross = httpx.get(
        f"{backend.url}/api/{auth['user_id']}/tasks",
        headers={"Authorization": f"Bearer {bob_auth['token']}"},
    )
    assert cross.status_code == 403
    alice.close()
    bob.close()


def test_task_crud_through_proxy(signed_in: tuple[WebClient, str]) -> None:
    web, _ = signed_in
    task = web.api("POST", "/api/tasks", {"title": "write tests"}).json()
    tid = task["id"]
    assert web.api("GET", f"/api/tasks/{tid}").json()["title"] == "write tests"
    updated = web.api("PUT", f"/api/tasks/{tid}", {"title": "write more tests"})
    assert updated.status_code == 200 and updated.json()["title"] == "write more tests"
    done = web.api("PATCH", f"/api/tasks/{tid}/complete", {"completed": True})
    assert done.status_code == 200 and done.json()["completed"] is True
    pending = web.api("GET", "/api/tasks?status=pending").json()
    assert pending["total"] == 0
    completed = web.api("GET", "/api/tasks?status=completed").json()
    assert [t["id"] for t in completed["items"]] == [tid]
    undone = web.api("PATCH", f"/api/tasks/{tid}/complete", {"completed": False})
    assert undone.json()["completed"] is False
    deleted = web.api("DELETE", f"/api/tasks/{tid}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert web.api("GET", f"/api/tasks/{tid}").status_code == 404


def test_chat_through_proxy(signed_in: tuple[WebClient, str]) -> None:
    web, _ = signed_in
    reply = web.api("POST", "/api/chat", {"message": "add a task to buy milk"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["response"] and body["conversation_id"] is not None
    assert any(call["name"] == "add_task" for call in body["tool_calls"])
    titles = [t["title"].lower() for t in web.api("GET", "/api/tasks").json()["items"]]
    assert "buy milk" in titles
    conversations = web.api("GET", "/api/conversations").json()
    assert [str(c["id"]) for c in conversations] == [str(body["conversation_id"])]
    messages = web.api("GET", f"/api/conversations/{body['conversation_id']}/messages").json()
    assert [m["role"] for m in messages] == ["user", "assistant"]
    meta = web.api("GET", "/api/meta").json()
    assert meta["agent"]["provider"] == "offline"


def test_api_needs_a_session(web: WebClient) -> None:
    response = web.http.get("/api/tasks")
    assert response.status_code == 401
    assert "sign in" in response.json()["detail"].lower()


# ------------------------------------------------------------------ session


def test_cookie_flags_and_token_not_in_html(
    frontend: Proc, signed_in: tuple[WebClient, str]
) -> None:
    web, name = signed_in
    page = web.http.get("/")
    data = session_data(web)
    assert data["username"] == name and data["token"]
    assert data["token"] not in page.text
    for asset in ("/static/app.js", "/static/app.css"):
        assert data["token"] not in web.http.get(asset).text
    assert data["token"] not in json.dumps(web.session())

    fresh = httpx.get(f"{frontend.url}/api/session")
    cookie = fresh.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    # From a peer that is not a trusted proxy, X-Forwarded-Proto is a claim, not a fact
    # (test_secure_cookie_follows_forwarded_proto_from_trusted_proxies_only).
    forged = httpx.get(f"{frontend.url}/api/session", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in forged.headers["set-cookie"]


def test_forged_cookie_is_ignored(frontend: Proc) -> None:
    forged = encode_session(make_signer("another-secret-entirely"), {"token": "t", "user_id": "1"})
    response = httpx.get(f"{frontend.url}/api/session", cookies={COOKIE_NAME: forged})
    assert response.json()["authenticated"] is False


def test_backend_401_expires_the_session(frontend: Proc, signed_in: tuple[WebClient, str]) -> None:
    web, _ = signed_in
    data = session_data(web)
    data["token"] = "expired-or-revoked-token"
    client = WebClient(frontend.url)
    client.plant_session(encode_session(make_signer(SESSION_SECRET), data))
    client.csrf = data["csrf"]
    response = client.api("GET", "/api/tasks")
    assert response.status_code == 401
    assert response.json()["detail"] == EXPIRED
    info = client.session()
    assert info["authenticated"] is False and info["username"] is None
    assert "token" not in session_data(client)
    assert 'action="/login"' in client.http.get("/").text
    client.close()


# ------------------------------------------------------------------ backend down


def test_backend_down(frontend_backend_down: Proc) -> None:
    web = WebClient(frontend_backend_down.url)
    page = web.http.get("/")
    assert page.status_code == 200
    assert "unreachable" in page.text.lower()
    assert 'data-testid="backend-unreachable"' in page.text
    login = web.login("someone")
    assert login.status_code == 503 and "unreachable" in login.text.lower()
    assert web.api("GET", "/api/meta").status_code == 503

    data = {"token": "t", "user_id": "1", "username": "someone", "csrf": "c" * 32}
    web.plant_session(encode_session(make_signer(SESSION_SECRET), data))
    web.csrf = data["csrf"]
    for method, path in (("GET", "/api/tasks"), ("POST", "/api/chat")):
        response = web.api(method, path, {"message": "hi"} if method == "POST" else None)
        assert response.status_code == 503
        assert response.json()["detail"].startswith("The task service is unreachable right now.")
    app_page = web.http.get("/")
    assert app_page.status_code == 200 and "unreachable" in app_page.text.lower()
    assert web.http.get("/healthz").status_code == 200
    web.close()


# ------------------------------------------------------------------ process behaviour


def test_sigterm_fails_readiness_then_drains(tmp_path: Path) -> None:
    handle = start_frontend(tmp_path, "http://127.0.0.1:9", DRAIN_SECONDS="1.5")
    assert handle.proc is not None
    try:
        handle.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1
        while httpx.get(f"{handle.url}/readyz").status_code != 503:
            assert time.monotonic() < deadline, "readiness still 200 a second after SIGTERM"
            time.sleep(0.05)
        assert httpx.get(f"{handle.url}/healthz").status_code == 200
        assert handle.proc.wait(timeout=15) == 0
        assert "draining for 1.5s" in handle.log.read_text()  # logged from the loop, not the handler
    finally:
        if handle.proc.poll() is None:  # hung: never leave it behind
            handle.proc.kill()
            handle.proc.wait()


def test_missing_session_secret_exits_2(tmp_path: Path) -> None:
    path = os.pathsep.join([str(FRONTEND_DIR), str(COMMON_DIR)])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": path, "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "todo_web"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SESSION_SECRET" in result.stderr
    short = subprocess.run(
        [sys.executable, "-m", "todo_web"],
        env={**env, "SESSION_SECRET": "tiny-value"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert short.returncode == 2 and "SESSION_SECRET" in short.stderr
    assert "tiny-value" not in short.stderr + short.stdout


def test_json_access_log_without_secrets(frontend: Proc, signed_in: tuple[WebClient, str]) -> None:
    web, _ = signed_in
    web.api("GET", "/api/tasks?status=all")
    time.sleep(0.3)
    lines = [json.loads(line) for line in frontend.log.read_text().splitlines() if line.strip()]
    access = [entry for entry in lines if entry.get("logger") == "todo_web.access"]
    assert access
    assert {"method", "path", "status", "duration_ms"} <= set(access[-1])
    assert any(e["path"] == "/api/tasks" and e["status"] == 200 for e in access)
    text = frontend.log.read_text()
    token = session_data(web)["token"]
    assert token not in text and PASSWORD not in text and COOKIE_NAME not in text
    assert not re.search(r"Bearer\s", text)


def test_user_input_is_escaped_in_pages(web: WebClient) -> None:
    response = web.signup("<script>alert(1)</script>", "x")
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


# ------------------------------------------------------------------ hostile clients (issue 19)
# A stand-in backend that records what the frontend sends and answers what a test scripts,
# so the proxy's own behaviour (headers passed on, streaming, caps) is observable.

PROXY_SECRET = "proxy-secret-" + "x" * 16
CAP = 65_536  # MAX_PROXY_BODY_BYTES of the frontends below (the setting's minimum)


@pytest.fixture(scope="module")
def fake_backend() -> Iterator[FakeBackend]:
    fake = FakeBackend()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def plain_frontend(fake_backend: FakeBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """No trusted proxies (the default): the TCP peer is the client."""
    handle = start_frontend(tmp_path_factory.mktemp("fe-plain"), fake_backend.url,
                            MAX_PROXY_BODY_BYTES=str(CAP), PROXY_SECRET=PROXY_SECRET)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def proxied_frontend(fake_backend: FakeBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """Behind a trusted proxy on loopback."""
    handle = start_frontend(tmp_path_factory.mktemp("fe-proxied"), fake_backend.url,
                            TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")
    yield handle
    handle.stop()


def test_client_address_is_the_peer_unless_a_trusted_proxy_says(
        fake_backend: FakeBackend, plain_frontend: Proc, proxied_frontend: Proc) -> None:
    """Old code: uvicorn believed anyone's X-Forwarded-For (forwarded_allow_ips="*") and the
    frontend passed it on, so rotating it bypassed every per-address limit; non-ASCII → 500."""
    cases = [
        (plain_frontend, "203.0.113.9", "127.0.0.1"),
        (plain_frontend, "garbage, ::1, 1.2.3.4", "127.0.0.1"),
        (proxied_frontend, "203.0.113.9, 10.1.2.3", "203.0.113.9"),
        (proxied_frontend, "garbage, 198.51.100.2", "198.51.100.2"),
        (proxied_frontend, "198.51.100.2, garbage", "127.0.0.1"),
        (proxied_frontend, "[2001:db8::1]:443", "2001:db8::1"),
        (proxied_frontend, "::ffff:198.51.100.3", "198.51.100.3"),
        (proxied_frontend, "203.0.113.9:8080, ::ffff:10.0.0.1", "203.0.113.9"),
    ]
    for frontend, claimed, expected in cases:
        web = forged_client(frontend.url)
        assert web.http.get("/api/tasks", headers={"X-Forwarded-For": claimed}).status_code == 200
        _, headers = fake_backend.last("/api/7/tasks")
        assert headers["x-forwarded-for"] == expected, (frontend.url, claimed)
        web.close()
    web = forged_client(proxied_frontend.url)
    web.http.get("/api/tasks", headers={"Forwarded": 'for="[2001:db8::7]:80";proto=https'})
    assert fake_backend.last("/api/7/tasks")[1]["x-forwarded-for"] == "2001:db8::7"
    web.close()
    web = forged_client(plain_frontend.url)
    assert web.http.get("/api/tasks").status_code == 200
    assert fake_backend.last("/api/7/tasks")[1]["x-proxy-secret"] == PROXY_SECRET
    for hostile in ("é".encode(), b"\xff\xfe, 1.2.3.4", b"1.2.3.4" * 500, b"::ffff:"):
        for path in ("/", "/login", "/api/tasks", "/api/meta"):
            response = web.http.get(path, headers={"X-Forwarded-For": hostile})
            assert response.status_code < 500, (hostile[:20], path, response.status_code)
    web.close()


def test_secure_cookie_follows_forwarded_proto_from_trusted_proxies_only(
        plain_frontend: Proc, proxied_frontend: Proc) -> None:
    forged = httpx.get(f"{plain_frontend.url}/api/session", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in forged.headers["set-cookie"]
    trusted = httpx.get(f"{proxied_frontend.url}/api/session", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in trusted.headers["set-cookie"]
    rfc7239 = httpx.get(f"{proxied_frontend.url}/api/session", headers={"Forwarded": "for=1.2.3.4;proto=https"})
    assert "Secure" in rfc7239.headers["set-cookie"]
    plain = httpx.get(f"{proxied_frontend.url}/api/session")
    assert "Secure" not in plain.headers["set-cookie"]


def test_trusted_proxies_setting_is_validated(tmp_path: Path) -> None:
    path = os.pathsep.join([str(FRONTEND_DIR), str(COMMON_DIR)])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": path, "HOME": str(tmp_path),
           "SESSION_SECRET": SESSION_SECRET}
    for name, value in (("TRUSTED_PROXIES", "10.0.0.0/8, not-an-ip"), ("PROXY_SECRET", "short-one")):
        result = subprocess.run([sys.executable, "-m", "todo_web"], env={**env, name: value},
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2 and name in result.stderr
        assert "short-one" not in result.stderr + result.stdout


def test_proxy_streams_the_backends_bytes(fake_backend: FakeBackend, plain_frontend: Proc) -> None:
    """Old code parsed and re-serialised every body (whole, in memory): the spacing changed."""
    body = b'{"items":  [ {"id": 1} ],   "total": 1}'
    fake_backend.replies["/api/7/tasks"] = Scripted(body=body)
    web = forged_client(plain_frontend.url)
    try:
        response = web.http.get("/api/tasks")
        assert response.status_code == 200 and response.content == body
        assert response.headers["content-type"] == "application/json"
        fake_backend.replies["/api/7/tasks"] = Scripted(body=body, chunked=True)
        assert web.http.get("/api/tasks").content == body
    finally:
        fake_backend.replies.pop("/api/7/tasks", None)
        web.close()


def test_proxy_caps_backend_bodies(fake_backend: FakeBackend, plain_frontend: Proc) -> None:
    """An announced body over MAX_PROXY_BODY_BYTES: 502 with a sentence, without reading it;
    an unannounced (chunked) one: cut off, the connection closed. Old code relayed both."""
    big = b'{"items": ["' + b"x" * (4 * CAP) + b'"]}'
    path = "/api/7/conversations/3/messages"
    web = forged_client(plain_frontend.url)
    try:
        fake_backend.replies[path] = Scripted(body=big)
        refused = web.http.get("/api/conversations/3/messages")
        assert refused.status_code == 502
        assert "too large" in refused.json()["detail"]
        fake_backend.replies[path] = Scripted(body=big, chunked=True)
        received = 0
        with pytest.raises(httpx.HTTPError), web.http.stream(  # the body never completes
                "GET", "/api/conversations/3/messages") as response:
            for chunk in response.iter_bytes():
                received += len(chunk)
        assert received <= CAP
        assert web.http.get("/healthz").status_code == 200
    finally:
        fake_backend.replies.pop(path, None)
        web.close()


def test_messages_route_forwards_paging(fake_backend: FakeBackend, plain_frontend: Proc) -> None:
    web = forged_client(plain_frontend.url)
    web.http.get("/api/conversations/3/messages?limit=5&before=90&user_id=8")
    seen, _ = fake_backend.last("/api/7/conversations/3/messages")
    query = dict(part.split("=") for part in seen.split("?")[1].split("&"))
    assert query == {"limit": "5", "before": "90"}
    web.close()


def test_refusals_keep_status_detail_and_retry_after(fake_backend: FakeBackend, plain_frontend: Proc) -> None:
    detail = b'{"detail": "You have reached the limit of 3 conversations."}'
    fake_backend.replies["/api/7/conversations"] = Scripted(
        status=429, body=detail, headers={"Content-Type": "application/json", "Retry-After": "7"})
    web = forged_client(plain_frontend.url)
    try:
        response = web.http.get("/api/conversations")
        assert response.status_code == 429 and response.headers["retry-after"] == "7"
        assert response.json()["detail"] == "You have reached the limit of 3 conversations."
    finally:
        fake_backend.replies.pop("/api/7/conversations", None)
        web.close()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[" * 30_000 + b"]" * 30_000, "nested deeper"),
        (b'{"title": ' + b"[" * 65 + b"]" * 65 + b"}", "nested deeper"),
        (b'{"title": 1e999999}', "not finite"),
        (b'{"title": NaN}', "not finite"),
        (b'{"title": -Infinity}', "not finite"),
        (b'{"title": "\xff\xfe caf\xc3"}', "not valid JSON"),
        (b'{"title": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"title": "unterminated', "not valid JSON"),
    ],
)
def test_bad_json_is_400(plain_frontend: Proc, body: bytes, needle: str) -> None:
    """Old code: 500 for the deep ones (RecursionError) and the non-finite ones (httpx
    cannot serialise inf/nan); the backend itself answers 400."""
    web = forged_client(plain_frontend.url)
    response = web.http.post("/api/tasks", content=body, headers={
        "Content-Type": "application/json", "X-CSRF-Token": web.csrf})
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]
    web.close()


def test_json_depth_ignores_brackets_in_strings() -> None:
    from todo_web.proxy import json_depth, parse_json

    assert json_depth(b'{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert json_depth(b'["\\"[[[", "x"]') == 1
    assert parse_json(b'{"title": "' + b"[" * 500 + b'"}') == {"title": "[" * 500}


@pytest.mark.parametrize("path", ["/login/", "/signup/", "/api/session/", "/static/app.css/"])
def test_redirects_never_name_the_host(plain_frontend: Proc, path: str) -> None:
    """Old code: Starlette's slash redirect answered Location: http://<Host header>/login."""
    response = httpx.get(f"{plain_frontend.url}{path}?next=1", headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == path.rstrip("/") + "?next=1"


@pytest.mark.parametrize("path", ["//evil.example/", "/\\evil.example/", "/nowhere/"])
def test_no_redirect_off_site(plain_frontend: Proc, path: str) -> None:
    response = httpx.get(f"{plain_frontend.url}{path}", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


def test_idempotency_key_is_passed_on(fake_backend: FakeBackend, plain_frontend: Proc) -> None:
    """A client retrying a create through the frontend reaches the backend with its key
    (the backend answers the retry from the first request and creates nothing twice)."""
    web = forged_client(plain_frontend.url)
    try:
        for path in ("/api/tasks", "/api/chat"):
            web.http.post(path, json={"title": "t", "message": "m"},
                          headers={"X-CSRF-Token": web.csrf, "Idempotency-Key": "retry-me-1"})
            _, headers = fake_backend.last(f"/api/7/{path.rsplit('/', 1)[1]}")
            assert headers.get("idempotency-key") == "retry-me-1", path
        web.http.post("/api/tasks", json={"title": "t"}, headers={"X-CSRF-Token": web.csrf})
        _, headers = fake_backend.last("/api/7/tasks")
        assert "idempotency-key" not in headers
    finally:
        web.close()
