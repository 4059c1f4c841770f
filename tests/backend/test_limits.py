"""Edges the fuzzer found: out-of-range ids, the 422 schema, an exhausted pool."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from conftest import make_settings, signup
from todo_api import tools
from todo_api.db import Database
from todo_api.models import ID_MAX
from todo_api.server import create_app

HUGE = 739_640_434_877_285_013_651_456


def test_out_of_range_ids_are_422_not_a_database_error(client: TestClient) -> None:
    user = signup(client)
    auth = {"Authorization": f"Bearer {user.token}"}
    for method, path in [
        ("GET", f"/api/{user.id}/tasks/{HUGE}"),
        ("PATCH", f"/api/{user.id}/tasks/{HUGE}/complete"),
        ("DELETE", f"/api/{user.id}/tasks/0"),
        ("GET", f"/api/{user.id}/tasks?offset={HUGE}"),
        ("GET", f"/api/{user.id}/conversations/{HUGE}/messages"),
        ("GET", f"/api/{HUGE}/tasks"),
    ]:
        response = client.request(method, path, headers=auth)
        assert response.status_code == 422, (method, path, response.text)
        assert isinstance(response.json()["detail"], str)
    chat = client.post(f"/api/{user.id}/chat", headers=auth,
                       json={"conversation_id": HUGE, "message": "hi"})
    assert chat.status_code == 422


def test_a_tool_given_an_out_of_range_id_says_not_found(client: TestClient) -> None:
    async def attempt() -> None:
        async with client.app.state.db.read() as conn:
            await tools.get_task(conn, 1, HUGE)

    with pytest.raises(tools.ToolError, match=f"Task {HUGE} not found"):
        client.portal.call(attempt)  # type: ignore[union-attr]


def test_openapi_422_schema_matches_what_is_sent(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["HTTPValidationError"]
    assert schema["properties"]["detail"]["type"] == "string"


def test_list_tasks_documents_the_parameters_it_validates_itself(client: TestClient) -> None:
    """The route reads its query string without FastAPI's per-parameter machinery: the
    OpenAPI document still names each parameter with its bounds, and the 422."""
    operation = client.get("/openapi.json").json()["paths"]["/api/{user_id}/tasks"]["get"]
    parameters = {p["name"]: (p["in"], p["required"], p["schema"]) for p in operation["parameters"]}
    assert parameters["user_id"][:2] == ("path", True) and parameters["user_id"][2]["minimum"] == 1
    assert parameters["status"] == ("query", False, {"default": "all", "enum": ["all", "pending", "completed"],
                                                     "title": "Status", "type": "string"})
    assert (parameters["limit"][2]["minimum"], parameters["limit"][2]["maximum"]) == (1, 200)
    assert (parameters["offset"][2]["minimum"], parameters["offset"][2]["maximum"]) == (0, ID_MAX)
    assert "422" in operation["responses"]
    user = signup(client)
    for path, detail in (("/api/0/tasks", "user_id: must be at least 1"),
                         (f"/api/{user.id}/tasks?limit=abc", "limit:"),
                         (f"/api/{user.id}/tasks?offset={HUGE}", "offset: must be at most")):
        answer = client.get(path, headers=user.headers)
        assert answer.status_code == 422 and answer.json()["detail"].startswith(detail), (path, answer.text)


def test_an_exhausted_connection_pool_answers_503_fast(sqlite_url: str) -> None:
    """Every pooled connection busy: a request waits DB_POOL_TIMEOUT_SECONDS at most, then 503 + Retry-After."""
    db = Database(sqlite_url, pool_size=1, pool_timeout=0.3)
    with TestClient(create_app(make_settings(sqlite_url), db=db)) as client:
        user = signup(client)
        held = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with db.read():
                held.set()
                await release.wait()

        async def start() -> None:
            asyncio.get_running_loop().create_task(hold())
            await held.wait()

        client.portal.call(start)  # type: ignore[union-attr]
        try:
            started = time.monotonic()
            response = client.get(f"/api/{user.id}/tasks", headers=user.headers)
            waited = time.monotonic() - started
            assert client.get("/health").status_code == 200
        finally:
            client.portal.call(release.set)  # type: ignore[union-attr]
    assert response.status_code == 503, response.text
    assert "database" in response.json()["detail"].lower() and response.headers["retry-after"]
    assert waited < 2


def test_connections_killed_under_the_app_give_503_then_recover(pg_database: str) -> None:
    """The database drops every connection (a restart): clean 503s at worst, then service again."""
    import psycopg

    from todo_api.settings import normalize_database_url

    with TestClient(create_app(make_settings(normalize_database_url(pg_database)))) as client:
        user = signup(client)
        base = f"/api/{user.id}/tasks"
        for _ in range(3):
            assert client.get(base, headers=user.headers).status_code == 200
            assert client.post(base, json={"title": "x"}, headers=user.headers).status_code == 201
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        statuses = []
        for _ in range(12):
            statuses.append(client.get(base, headers=user.headers).status_code)
            statuses.append(client.post(base, json={"title": "y"}, headers=user.headers).status_code)
        assert set(statuses) <= {200, 201, 503}, statuses
        time.sleep(0.5)
        assert client.get(base, headers=user.headers).status_code == 200
        assert client.post(base, json={"title": "z"}, headers=user.headers).status_code == 201
        print("after the connections were killed:", statuses)
