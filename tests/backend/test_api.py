"""REST API: auth, tasks, validation, isolation. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from conftest import SECRET, User, make_settings, signup


def test_signup_login_and_errors(client: TestClient) -> None:
    user = signup(client, password="s3cret-pass")
    assert user.id > 0 and user.token.count(".") == 2
    claims = jwt.decode(user.token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.id) and claims["exp"] > datetime.now(UTC).timestamp()

    dup = client.post("/api/auth/signup", json={"username": user.username, "password": "another-pass"})
    assert dup.status_code == 409
    assert dup.json() == {"detail": f"Username '{user.username}' is already taken"}

    ok = client.post("/api/auth/login", json={"username": user.username, "password": "s3cret-pass"})
    assert ok.status_code == 200 and ok.json()["user_id"] == user.id and ok.json()["username"] == user.username
    bad = client.post("/api/auth/login", json={"username": user.username, "password": "wrong-pass"})
    assert bad.status_code == 401 and bad.json() == {"detail": "Wrong username or password"}
    nobody = client.post("/api/auth/login", json={"username": "no_such_user_x", "password": "whatever1"})
    assert nobody.status_code == 401 and nobody.json() == bad.json()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"username": "ab", "password": "longenough"}, "username: must be at least 3 characters"),
        ({"username": "a" * 33, "password": "longenough"}, "username: must be at most 32 characters"),
        ({"username": "bad name!", "password": "longenough"}, "username: may only contain"),
        ({"username": "goodname", "password": "short"}, "password: must be at least 8 characters"),
        ({"username": "goodname", "password": "p" * 129}, "password: must be at most 128 characters"),
        ({"password": "longenough"}, "username: is required"),
    ],
)
def test_signup_validation(sqlite_client: TestClient, body: dict[str, str], fragment: str) -> None:
    r = sqlite_client.post("/api/auth/signup", json=body)
    assert r.status_code == 422
    assert fragment in r.json()["detail"]
    assert isinstance(r.json()["errors"], list) and r.json()["errors"]


def test_token_problems(sqlite_client: TestClient) -> None:
    user = signup(sqlite_client)
    url = f"/api/{user.id}/tasks"
    assert sqlite_client.get(url).status_code == 401
    assert "Bearer" in sqlite_client.get(url).json()["detail"]
    garbage = sqlite_client.get(url, headers={"Authorization": "Bearer not.a.token"})
    assert garbage.status_code == 401 and "Invalid token" in garbage.json()["detail"]
    expired = jwt.encode(
        {"sub": str(user.id), "exp": datetime.now(UTC) - timedelta(minutes=1)}, SECRET, algorithm="HS256"
    )
    r = sqlite_client.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json() == {"detail": "Session expired, sign in again"}
    forged = jwt.encode(
        {"sub": str(user.id), "exp": datetime.now(UTC) + timedelta(minutes=5)}, "another-secret-xxxxxxxx", "HS256"
    )
    assert sqlite_client.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert sqlite_client.get(url, headers=user.headers).status_code == 200


def test_task_crud(client: TestClient) -> None:
    user = signup(client)
    base = f"/api/{user.id}/tasks"
    created = client.post(base, json={"title": "Buy milk", "description": "2 litres"}, headers=user.headers)
    assert created.status_code == 201
    task = created.json()
    assert set(task) == {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}
    assert task["title"] == "Buy milk" and task["description"] == "2 litres" and task["completed"] is False
    assert task["user_id"] == user.id
    tid = task["id"]

    assert client.get(f"{base}/{tid}", headers=user.headers).json()["title"] == "Buy milk"
    put = client.put(f"{base}/{tid}", json={"title": "Buy oat milk", "completed": True}, headers=user.headers)
    assert put.status_code == 200 and put.json()["title"] == "Buy oat milk" and put.json()["completed"] is True
    assert put.json()["description"] == "2 litres"

    undo = client.patch(f"{base}/{tid}/complete", json={"completed": False}, headers=user.headers)
    assert undo.status_code == 200 and undo.json()["completed"] is False
    redo = client.patch(f"{base}/{tid}/complete", headers=user.headers)
    assert redo.status_code == 200 and redo.json()["completed"] is True

    assert client.delete(f"{base}/{tid}", headers=user.headers).status_code == 204
    gone = client.get(f"{base}/{tid}", headers=user.headers)
    assert gone.status_code == 404 and gone.json() == {"detail": f"Task {tid} not found"}
    assert client.delete(f"{base}/{tid}", headers=user.headers).status_code == 404
    assert client.put(f"{base}/{tid}", json={"title": "x"}, headers=user.headers).status_code == 404
    assert client.patch(f"{base}/{tid}/complete", headers=user.headers).status_code == 404


def test_titles_stored_verbatim(client: TestClient) -> None:
    user = signup(client)
    nasty = "<script>alert('x')</script>'; DROP TABLE tasks; --\tünïcødé 🎉"
    r = client.post(f"/api/{user.id}/tasks", json={"title": nasty}, headers=user.headers)
    assert r.status_code == 201
    assert client.get(f"/api/{user.id}/tasks/{r.json()['id']}", headers=user.headers).json()["title"] == nasty


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"title": ""}, "title: must not be empty"),
        ({"title": "   \n "}, "title: must not be empty"),
        ({"title": "a" * 201}, "title: must be at most 200 characters"),
        ({"title": "bell\x07"}, "title: must not contain control characters"),
        ({"title": "ok", "description": "d" * 1001}, "description: must be at most 1000 characters"),
        ({}, "title: is required"),
        ({"title": 5}, "title:"),
    ],
)
def test_task_validation(sqlite_client: TestClient, body: dict[str, object], fragment: str) -> None:
    user = signup(sqlite_client)
    r = sqlite_client.post(f"/api/{user.id}/tasks", json=body, headers=user.headers)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"] and r.json()["errors"]
    assert sqlite_client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 0


def test_invalid_json_and_unknown_route(sqlite_client: TestClient) -> None:
    user = signup(sqlite_client)
    r = sqlite_client.post(
        f"/api/{user.id}/tasks", content="{not json", headers={**user.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    nf = sqlite_client.get("/api/nothing/here")
    assert nf.status_code == 404 and "detail" in nf.json()


def test_list_pagination_and_status(client: TestClient) -> None:
    user = signup(client)
    base = f"/api/{user.id}/tasks"
    ids = [client.post(base, json={"title": f"task {i}"}, headers=user.headers).json()["id"] for i in range(7)]
    for tid in ids[:3]:
        client.patch(f"{base}/{tid}/complete", headers=user.headers)

    page = client.get(base, params={"limit": 3, "offset": 0}, headers=user.headers).json()
    assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == 0
    assert [t["id"] for t in page["items"]] == sorted(ids, reverse=True)[:3]  # newest first
    page2 = client.get(base, params={"limit": 3, "offset": 6}, headers=user.headers).json()
    assert [t["id"] for t in page2["items"]] == [ids[0]]

    pending = client.get(base, params={"status": "pending"}, headers=user.headers).json()
    assert pending["total"] == 4 and all(not t["completed"] for t in pending["items"])
    done = client.get(base, params={"status": "completed"}, headers=user.headers).json()
    assert sorted(t["id"] for t in done["items"]) == sorted(ids[:3])

    for params, fragment in [
        ({"limit": 0}, "limit: must be at least 1"),
        ({"limit": 201}, "limit: must be at most 200"),
        ({"offset": -1}, "offset: must be at least 0"),
        ({"status": "weird"}, "status:"),
    ]:
        r = client.get(base, params=params, headers=user.headers)
        assert r.status_code == 422 and fragment in r.json()["detail"], r.text


def test_user_isolation_on_every_route(client: TestClient) -> None:
    alice, bob = signup(client), signup(client)
    a_task = client.post(f"/api/{alice.id}/tasks", json={"title": "alice secret"}, headers=alice.headers).json()
    tid = a_task["id"]

    # Bob using his own token on Alice's paths: 403 everywhere.
    a = f"/api/{alice.id}"
    for method, path, body in [
        ("GET", f"{a}/tasks", None),
        ("POST", f"{a}/tasks", {"title": "intruder"}),
        ("GET", f"{a}/tasks/{tid}", None),
        ("PUT", f"{a}/tasks/{tid}", {"title": "hacked"}),
        ("DELETE", f"{a}/tasks/{tid}", None),
        ("PATCH", f"{a}/tasks/{tid}/complete", None),
        ("POST", f"{a}/chat", {"message": "show my tasks"}),
        ("GET", f"{a}/conversations", None),
        ("GET", f"{a}/conversations/1/messages", None),
    ]:
        r = client.request(method, path, json=body, headers=bob.headers)
        assert r.status_code == 403, (method, path, r.text)
        assert "alice secret" not in r.text

    # Bob on his own paths naming Alice's task id: 404 identical to a missing task.
    b = f"/api/{bob.id}/tasks/{tid}"
    for method, path, body in [
        ("GET", b, None),
        ("PUT", b, {"title": "hacked"}),
        ("DELETE", b, None),
        ("PATCH", f"{b}/complete", None),
    ]:
        r = client.request(method, path, json=body, headers=bob.headers)
        assert r.status_code == 404 and r.json() == {"detail": f"Task {tid} not found"}
    assert client.get(f"/api/{bob.id}/tasks", headers=bob.headers).json()["total"] == 0

    still = client.get(f"{a}/tasks/{tid}", headers=alice.headers).json()
    assert still["title"] == "alice secret" and still["completed"] is False


def test_list_page_from_the_database_matches_the_generic_page(client: TestClient) -> None:
    """PostgreSQL builds the list page's JSON itself; it must say what the tools say."""
    from todo_api import tools

    user = signup(client)
    for i in range(4):
        client.post(f"/api/{user.id}/tasks", json={"title": f"t{i} \"quoted\" ü", "description": "d\nx"},
                    headers=user.headers)
    client.patch(f"/api/{user.id}/tasks/2/complete", headers=user.headers)
    for params in ({}, {"status": "completed"}, {"status": "pending", "limit": 2}, {"offset": 1, "limit": 2}):
        served = client.get(f"/api/{user.id}/tasks", params=params, headers=user.headers).json()

        async def generic(params: dict = params) -> tuple[list, int]:  # type: ignore[type-arg]
            async with client.app.state.db.read() as conn:
                return await tools.query_tasks(conn, user.id, params.get("status", "all"),
                                               limit=params.get("limit", 50), offset=params.get("offset", 0))

        page, total = client.portal.call(generic)  # type: ignore[union-attr]
        assert served["total"] == total
        for got, want in zip(served["items"], page, strict=True):
            for key in ("created_at", "updated_at"):
                assert datetime.fromisoformat(got.pop(key)) == datetime.fromisoformat(want.pop(key))
            assert got == want


def test_concurrent_creates_get_distinct_numbers(client: TestClient) -> None:
    """20 creates at once for one user: numbers 1..20, none lost, none twice."""
    import asyncio

    from todo_api import tools

    user = signup(client)
    db = client.app.state.db

    async def create(i: int) -> int:
        async with db.atomic() as conn:
            return int((await tools.add_task(conn, user.id, f"c{i}", None, 0))["task"]["id"])

    async def burst() -> list[int]:
        return list(await asyncio.gather(*(create(i) for i in range(20))))

    numbers = client.portal.call(burst)  # type: ignore[union-attr]
    assert sorted(numbers) == list(range(1, 21))
    assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 20


# --- Bad input is a 4xx (issue 19, item 7) ------------------------------------------------

CONTROL_CASES = [
    ("POST", "/api/auth/login", {"username": "ann\x00", "password": "whatever-1"}, "username: must not contain"),
    ("POST", "/api/auth/login", {"username": "ann\u202e", "password": "whatever-1"}, "username: must not contain"),
    ("POST", "/api/auth/login", {"username": "ann", "password": "what\x00ever-1"}, "password: must not contain"),
    ("POST", "/api/auth/signup", {"username": "ann_x", "password": "what\x00ever-1"}, "password: must not contain"),
    ("POST", "{u}/chat", {"message": "add task \x00"}, "message: must not contain control characters"),
    ("POST", "{u}/chat", {"message": "add task \u2067x"}, "message: must not contain control characters"),
    ("POST", "{u}/tasks", {"title": "invoice\u202efdp.exe"}, "title: must not contain control characters"),
    ("POST", "{u}/tasks", {"title": "t", "description": "a\u200fb"}, "description: must not contain control"),
    ("PUT", "{u}/tasks/1", {"title": "\u061cx"}, "title: must not contain control characters"),
    ("POST", "{u}/tasks", {"title": "c1 \x85 next line"}, "title: must not contain control characters"),
]


@pytest.mark.parametrize(("method", "path", "body", "fragment"), CONTROL_CASES)
def test_control_characters_are_refused_in_every_string_field(
    client: TestClient, method: str, path: str, body: dict[str, str], fragment: str
) -> None:
    """NUL, C1 and the bidi controls: a 422 naming the field (NUL was a 503 on PostgreSQL)."""
    user = signup(client)
    client.post(f"/api/{user.id}/tasks", json={"title": "first"}, headers=user.headers)
    r = client.request(method, path.format(u=f"/api/{user.id}"), json=body, headers=user.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(fragment), r.json()
    tasks = client.get(f"/api/{user.id}/tasks", headers=user.headers).json()
    assert [t["title"] for t in tasks["items"]] == ["first"]


def test_tabs_and_newlines_stay_allowed(sqlite_client: TestClient) -> None:
    user = signup(sqlite_client)
    r = sqlite_client.post(f"/api/{user.id}/tasks", json={"title": "a\tb", "description": "line\r\nline\tz \u200b"},
                           headers=user.headers)
    assert r.status_code == 201, r.text
    assert sqlite_client.post(f"/api/{user.id}/chat", json={"message": "show\tmy\ntasks"},
                              headers=user.headers).status_code == 200


def _raising(exc: BaseException) -> Callable[[], Awaitable[None]]:
    async def route() -> None:
        raise exc

    return route


def _database_errors() -> list[tuple[BaseException, int, str]]:
    import psycopg
    from psycopg import errors as pg
    from sqlalchemy import exc as sa

    def wrap(cls: type[sa.DBAPIError], orig: Exception, invalidated: bool = False) -> sa.DBAPIError:
        return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)

    unavailable, busy = "The database is unavailable, try again shortly", "The database is busy, try again shortly"
    return [
        (wrap(sa.DataError, psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")), 422,
         "The request contains a NUL character, which cannot be stored"),
        (wrap(sa.DataError, pg.NumericValueOutOfRange("integer out of range")), 422,
         "A number in the request is out of range"),
        (wrap(sa.DataError, pg.InvalidTextRepresentation("invalid input syntax")), 422,
         "The request holds a value that cannot be stored"),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), 422,
         "The request contains a NUL character, which cannot be stored"),
        (wrap(sa.OperationalError, pg.LockNotAvailable("canceling statement due to lock timeout")), 503, busy),
        (wrap(sa.OperationalError, pg.QueryCanceled("canceling statement due to statement timeout")), 503, busy),
        (pg.QueryCanceled("canceling statement due to statement timeout"), 503, busy),
        (wrap(sa.OperationalError, psycopg.OperationalError("connection refused")), 503, unavailable),
        (wrap(sa.InterfaceError, psycopg.InterfaceError("the connection is closed")), 503, unavailable),
        (wrap(sa.InternalError, psycopg.InternalError("terminated"), invalidated=True), 503, unavailable),
        (wrap(sa.IntegrityError, pg.UniqueViolation("duplicate key")), 409,
         "That conflicts with something stored meanwhile; reload and try again"),
        (wrap(sa.ProgrammingError, pg.UndefinedColumn("no such column")), 500,
         "Something went wrong on our side, try again"),
    ]


def test_database_errors_map_to_what_went_wrong(sqlite_url: str) -> None:
    """A value the database refuses is the request's fault (422), a timeout is "busy" (503),
    only a lost or unobtainable connection is "unavailable" (503). Before: all 503 unavailable."""
    from todo_api.server import create_app

    app = create_app(make_settings(sqlite_url))
    cases = _database_errors()
    for i, (exc, _, _) in enumerate(cases):
        app.add_api_route(f"/boom/{i}", _raising(exc))
    with TestClient(app, raise_server_exceptions=False) as c:
        for i, (exc, status, detail) in enumerate(cases):
            r = c.get(f"/boom/{i}")
            assert (r.status_code, r.json()["detail"]) == (status, detail), (exc, r.text)
            assert ("retry-after" in r.headers) == (status == 503), (exc, r.headers)


def test_postgres_refusals_are_4xx_and_timeouts_busy(pg_database: str, postgres_url: str) -> None:
    """The real thing on PostgreSQL: NUL, out of range and non-numeric text are 422; a statement
    or lock timeout is 503 "busy"."""
    import psycopg
    from sqlalchemy import text

    from todo_api.server import create_app

    app = create_app(make_settings(pg_database))

    async def value(v: str) -> None:
        async with app.state.db.read() as conn:
            await conn.execute(text("SELECT CAST(CAST(:v AS text) AS integer)"), {"v": v})

    async def nul() -> None:
        async with app.state.db.read() as conn:
            await conn.execute(text("SELECT :v"), {"v": "a\x00b"})

    async def slow() -> None:
        async with app.state.db.write() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = '50ms'"))
            await conn.execute(text("SELECT pg_sleep(2)"))

    async def locked() -> None:
        async with app.state.db.write() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '50ms'"))
            await conn.execute(text("LOCK TABLE auth_throttle IN ACCESS EXCLUSIVE MODE"))

    app.add_api_route("/value/{v}", value)
    app.add_api_route("/nul", nul)
    app.add_api_route("/slow", slow)
    app.add_api_route("/locked", locked)
    with TestClient(app, raise_server_exceptions=False) as c, psycopg.connect(pg_database) as holder:
        assert c.get("/nul").status_code == 422
        assert c.get("/value/99999999999").json() == {"detail": "A number in the request is out of range"}
        assert c.get("/value/abc").status_code == 422
        assert c.get("/slow").json() == {"detail": "The database is busy, try again shortly"}
        holder.execute("LOCK TABLE auth_throttle IN ACCESS EXCLUSIVE MODE")
        r = c.get("/locked")
        assert r.status_code == 503 and r.json()["detail"] == "The database is busy, try again shortly"
        assert r.headers["retry-after"]
        holder.rollback()


def test_a_client_gone_mid_body_is_a_499_logged_at_info(sqlite_client: TestClient,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Half a body, then http.disconnect: no 500 and no error in the log (before: a 500)."""
    import asyncio
    import logging

    user = signup(sqlite_client)
    path = f"/api/{user.id}/tasks"
    messages = [{"type": "http.request", "body": b'{"title": "half', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"authorization", f"Bearer {user.token}".encode()), (b"content-type", b"application/json"),
                         (b"content-length", b"400"), (b"host", b"testserver")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    with caplog.at_level(logging.INFO):
        sqlite_client.portal.call(sqlite_client.app, scope, receive, send)  # type: ignore[union-attr]
    assert sent and sent[0]["status"] == 499, sent
    access = [r for r in caplog.records if r.name == "todo_api.access"]
    assert [getattr(r, "status", None) for r in access] == [499]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    assert any(r.getMessage() == "client went away" for r in caplog.records)
    assert sqlite_client.get(path, headers=user.headers).json()["total"] == 0


# --- Idempotency-Key ------------------------------------------------------------------------

def _create(client: TestClient, user: User, title: str, key: str | None) -> httpx.Response:
    headers = {**user.headers, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(f"/api/{user.id}/tasks", json={"title": title}, headers=headers)


def test_idempotency_key_replays_the_first_create(client: TestClient) -> None:
    user = signup(client)
    first = _create(client, user, "pay rent", "k-1")
    again = _create(client, user, "pay rent", "k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    reused = _create(client, user, "pay more rent", "k-1")
    assert reused.status_code == 422
    assert reused.json() == {"detail": "Idempotency-Key reused with a different request"}
    # Keys are per user, and no key is no idempotency.
    other = signup(client)
    assert _create(client, other, "pay rent", "k-1").json()["id"] == 1
    assert _create(client, user, "pay rent", None).json()["id"] == 2
    assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 2


def test_a_failed_create_releases_its_key(sqlite_client: TestClient) -> None:
    user = signup(sqlite_client)
    bad = sqlite_client.post(f"/api/{user.id}/tasks", json={"title": " "},
                             headers={**user.headers, "Idempotency-Key": "k"})
    assert bad.status_code == 422
    assert _create(sqlite_client, user, "fine", "k").status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 129, "tab\there", "caf\u00e9"])
def test_a_malformed_idempotency_key_is_a_400(sqlite_client: TestClient, key: str) -> None:
    user = signup(sqlite_client)
    r = sqlite_client.post(f"/api/{user.id}/tasks", json={"title": "t"},
                           headers=[*user.headers.items(), ("Idempotency-Key", key.encode("latin-1"))])
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "Idempotency-Key must be 1 to 128 printable ASCII characters, sent once"
    assert sqlite_client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 0


def test_idempotency_claims_in_progress_stale_and_expired(client: TestClient) -> None:
    """A claim still running: 409 + Retry-After. One whose worker died (past the lease): taken
    over. A stored response older than 24 h: gone, the request runs anew."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, update

    from todo_api import idempotency
    from todo_api.models import idempotency_keys

    user = signup(client)
    scope = f"user:{user.id}"
    secret = client.app.state.settings.auth_secret.get_secret_value()  # type: ignore[attr-defined]
    fp = idempotency.fingerprint(secret, "POST", f"/api/{user.id}/tasks", {"title": "t", "description": None})
    now = datetime.now(UTC)

    async def execute(stmt: object) -> None:
        async with client.app.state.db.read() as conn:  # type: ignore[attr-defined]
            await conn.execute(stmt)

    client.portal.call(execute, insert(idempotency_keys).values(  # type: ignore[union-attr]
        scope=scope, key="running", fingerprint=fp, created_at=now, claimed_at=now))
    busy = _create(client, user, "t", "running")
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"

    old = now - idempotency.LEASE - timedelta(seconds=5)
    client.portal.call(execute, update(idempotency_keys).where(  # type: ignore[union-attr]
        idempotency_keys.c.key == "running").values(claimed_at=old))
    assert _create(client, user, "t", "running").status_code == 201

    client.portal.call(execute, update(idempotency_keys).where(  # type: ignore[union-attr]
        idempotency_keys.c.key == "running").values(created_at=now - idempotency.TTL - timedelta(minutes=1)))
    fresh = _create(client, user, "t", "running")
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 2


def test_a_retried_signup_with_a_key_makes_one_account(client: TestClient) -> None:
    name = f"idem_{uuid.uuid4().hex[:10]}"
    body = {"username": name, "password": "correct-horse-1"}
    first = client.post("/api/auth/signup", json=body, headers={"Idempotency-Key": "s-1"})
    again = client.post("/api/auth/signup", json=body, headers={"Idempotency-Key": "s-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["user_id"] == first.json()["user_id"] and again.headers["idempotent-replayed"] == "true"
    me = client.get("/api/auth/session", headers={"Authorization": f"Bearer {again.json()['token']}"})
    assert me.status_code == 200 and me.json()["username"] == name
    other = client.post("/api/auth/signup", json={**body, "password": "another-pass-2"},
                        headers={"Idempotency-Key": "s-1"})
    assert other.status_code == 422
    # The stored response holds no token.
    from sqlalchemy import select

    from todo_api.models import idempotency_keys

    async def stored() -> str:
        async with client.app.state.db.read() as conn:  # type: ignore[attr-defined]
            return str((await conn.execute(select(idempotency_keys.c.body).where(
                idempotency_keys.c.scope == f"signup:{name}"))).scalar_one())

    assert "token" not in client.portal.call(stored)  # type: ignore[union-attr]


def test_a_library_error_for_a_client_gone_is_logged_at_info() -> None:
    """The MCP transport logs ClientDisconnect as an error with a traceback; the app's log filter
    makes it one info line (before: an error, and the access line said 500)."""
    import logging
    import sys

    from starlette.requests import ClientDisconnect

    from todo_api.logging import client_gone_is_no_error

    try:
        raise ClientDisconnect
    except ClientDisconnect:
        gone = logging.LogRecord("mcp.server", logging.ERROR, __file__, 1, "Error handling POST request", None,
                                 sys.exc_info())
    assert client_gone_is_no_error(gone)
    assert (gone.levelno, gone.levelname, gone.getMessage(), gone.exc_info) == (logging.INFO, "INFO",
                                                                                 "client went away", None)
    other = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("a",), None)
    assert client_gone_is_no_error(other) and other.levelno == logging.ERROR and other.getMessage() == "boom a"
