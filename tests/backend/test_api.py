"""REST API: auth, tasks, validation, isolation. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient

from conftest import SECRET, signup


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
