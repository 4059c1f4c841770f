"""Edges the fuzzer found: out-of-range ids, the 422 schema, an exhausted pool; the body's
deadline and minimum rate, and the per-client connection slots (todo_serving.limits)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from todo_serving import limits
from todo_serving.limits import BodyLimit, ClientSlots

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
            admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
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


# ---------------------------------------------------------------- body deadline, rate, slots


def _trickle(chunks: int, every: float, size: int = 1):
    """An ASGI receive giving `size` bytes every `every` seconds, `chunks` times."""
    sent = 0

    async def receive() -> dict:
        nonlocal sent
        await asyncio.sleep(every)
        sent += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": sent < chunks}

    return receive


def _run_body_limit(limit_kwargs: dict, receive) -> tuple[int, float]:
    """The status BodyLimit answers for an app that reads the whole body, and the seconds taken."""
    sent: list[dict] = []

    async def app(scope: dict, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})

    async def send(message: dict) -> None:
        sent.append(message)

    async def call() -> None:
        from starlette.exceptions import HTTPException

        try:
            await BodyLimit(app, **limit_kwargs)({"type": "http", "headers": []}, receive, send)
        except HTTPException as exc:  # what the app's error handler would render
            sent.append({"type": "http.response.start", "status": exc.status_code})

    started = time.monotonic()
    asyncio.run(call())
    return sent[0]["status"], time.monotonic() - started


def test_a_body_trickled_within_the_timeout_per_chunk_is_cut_at_one_deadline() -> None:
    # A byte every 0.1 s, each well inside the 0.6 s timeout: the old per-chunk timeout
    # restarted at every byte and read all 40 (4 s).
    status, seconds = _run_body_limit({"timeout": 0.6}, _trickle(40, 0.1))
    assert status == 408
    assert 0.5 < seconds < 1.5, f"cut after {seconds:.2f}s"


def test_a_body_slower_than_the_minimum_rate_is_cut_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "RATE_GRACE_SECONDS", 0.3)
    # 20 bytes/s against a minimum of 100 bytes/s, with 10 s of deadline left.
    status, seconds = _run_body_limit({"timeout": 10, "min_rate": 100}, _trickle(100, 0.05))
    assert status == 408
    assert seconds < 1.5, f"cut after {seconds:.2f}s"
    # Fast enough: read to the end.
    status, _ = _run_body_limit({"timeout": 10, "min_rate": 100}, _trickle(20, 0.01, size=10))
    assert status == 200


def test_the_wait_for_the_next_chunk_is_what_is_left_of_deadline_and_rate() -> None:
    limit = BodyLimit(None, timeout=10, min_rate=100)  # type: ignore[arg-type]
    assert limit.wait_budget(0, 0) == pytest.approx(limits.RATE_GRACE_SECONDS)
    assert limit.wait_budget(1, 500) == pytest.approx(4)  # 500 bytes last until t=5 at 100/s
    assert limit.wait_budget(9, 5_000) == pytest.approx(1)  # the whole body's deadline first
    assert limit.wait_budget(11, 5_000) == pytest.approx(0.01)  # past it: only what is buffered
    assert BodyLimit(None, timeout=10).wait_budget(3, 0) == pytest.approx(7)  # type: ignore[arg-type]


def test_client_slots_count_each_client_up_to_its_cap() -> None:
    slots = ClientSlots(per_client=2)
    for _ in range(5):
        slots.opened("10.0.0.1")
    slots.opened("10.0.0.2")
    assert slots.over("10.0.0.1") and not slots.over("10.0.0.2")
    assert slots.counted == 3  # 2 of the first client's 5, 1 of the second's
    for _ in range(3):
        slots.closed("10.0.0.1")
    assert not slots.over("10.0.0.1") and slots.counted == 3
    for _ in range(2):
        slots.closed("10.0.0.1")
    slots.closed("10.0.0.2")
    assert slots.counted == 0 and slots.open == {}
    unlimited = ClientSlots(per_client=None)
    for _ in range(3):
        unlimited.opened("10.0.0.1")
    assert unlimited.counted == 3 and not unlimited.over("10.0.0.1")


class _FakeProtocol:
    """What RequestGate uses of a protocol: start_task() and transport.is_closing()."""

    def __init__(self, started: list, closing: bool = False) -> None:
        self.started, self.closing = started, closing
        self.transport = self

    def is_closing(self) -> bool:
        return self.closing

    def start_task(self, cycle: object, app) -> None:
        self.started.append((cycle, app))


def test_the_gate_runs_at_most_its_limit_and_the_rest_in_arrival_order() -> None:
    async def app(scope: dict, receive, send) -> None:
        pass

    def finish(entry: tuple) -> None:
        asyncio.run(entry[1]({}, None, None))  # the gated app returns: its slot is free

    started: list = []
    gate = limits.RequestGate(limit=2)
    gone = _FakeProtocol(started, closing=True)
    for name, protocol in (("a", _FakeProtocol(started)), ("b", _FakeProtocol(started)), ("c", gone),
                           ("d", _FakeProtocol(started))):
        gate.admit(protocol, name, app)
    assert [cycle for cycle, _ in started] == ["a", "b"] and gate.running == 2 and len(gate.waiting) == 2
    finish(started[0])
    assert [cycle for cycle, _ in started] == ["a", "b", "d"]  # c's client left while it waited
    finish(started[1])
    finish(started[2])
    assert gate.running == 0 and not gate.waiting
