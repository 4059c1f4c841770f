"""Edges the fuzzer found: out-of-range ids, the 422 schema, an exhausted pool."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Session

from conftest import signup
from todo_api import tools
from todo_api.db import get_session

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
    with Session(client.app.state.engine) as session, pytest.raises(
        tools.ToolError, match=f"Task {HUGE} not found"
    ):
        tools.get_task(session, 1, HUGE)


def test_openapi_422_schema_matches_what_is_sent(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["HTTPValidationError"]
    assert schema["properties"]["detail"]["type"] == "string"


def test_an_exhausted_connection_pool_answers_503(client: TestClient) -> None:
    user = signup(client)

    def no_connection():  # type: ignore[no-untyped-def]
        raise PoolTimeoutError("QueuePool limit reached, connection timed out")
        yield  # pragma: no cover

    client.app.dependency_overrides[get_session] = no_connection
    try:
        response = client.get(f"/api/{user.id}/tasks",
                              headers={"Authorization": f"Bearer {user.token}"})
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 503
    assert "database" in response.json()["detail"].lower()
