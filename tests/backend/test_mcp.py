"""MCP tools through the official client against a real uvicorn server, with bearer auth and isolation."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import BACKEND, COMMON, free_port, make_settings, signup
from todo_api.server import create_app


def serve_app(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/started", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()


@pytest.fixture
def live_server(db_url: str) -> Iterator[str]:
    yield from serve_app(create_app(make_settings(db_url)))


async def _session_calls(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    results = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = await session.list_tools()
        results.append(sorted(t.name for t in listed.tools))
        for name, args in calls:
            results.append(await session.call_tool(name, args))
    return results


def run(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return asyncio.run(_session_calls(url, token, calls))


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def structured(result: Any) -> dict[str, Any]:
    data = result.structured_content
    assert isinstance(data, dict), result
    return data.get("result", data) if set(data) == {"result"} else data


def test_mcp_tools_and_isolation(live_server: str) -> None:
    with httpx.Client(base_url=live_server) as http:
        alice, bob = signup(http), signup(http)
    url = f"{live_server}/mcp"

    out = run(url, alice.token, [
        ("add_task", {"user_id": alice.id, "title": "Buy milk", "description": "2 litres"}),
        ("add_task", {"user_id": alice.id, "title": "Call mom"}),
    ])
    assert out[0] == ["add_task", "complete_task", "delete_task", "list_tasks", "update_task"]
    milk = structured(out[1])["task"]
    mom = structured(out[2])["task"]
    assert milk["title"] == "Buy milk" and milk["description"] == "2 litres" and milk["user_id"] == alice.id

    out = run(url, alice.token, [
        ("complete_task", {"user_id": alice.id, "task_id": milk["id"]}),
        ("update_task", {"user_id": alice.id, "task_id": mom["id"], "title": "Call mum"}),
        ("list_tasks", {"user_id": alice.id, "status": "pending"}),
        ("list_tasks", {"user_id": alice.id}),
    ])
    assert structured(out[1])["task"]["completed"] is True
    assert structured(out[2])["task"]["title"] == "Call mum"
    assert [t["title"] for t in structured(out[3])["tasks"]] == ["Call mum"]
    assert structured(out[4])["count"] == 2

    # Bob: naming Alice's user id is refused; naming Alice's task ids under his own id is "not found".
    attacks: list[tuple[str, dict[str, Any]]] = [
        ("list_tasks", {"user_id": alice.id}),
        ("add_task", {"user_id": alice.id, "title": "intruder"}),
        ("complete_task", {"user_id": alice.id, "task_id": mom["id"]}),
        ("update_task", {"user_id": alice.id, "task_id": mom["id"], "title": "hacked"}),
        ("delete_task", {"user_id": alice.id, "task_id": mom["id"]}),
        ("complete_task", {"user_id": bob.id, "task_id": mom["id"]}),
        ("update_task", {"user_id": bob.id, "task_id": mom["id"], "title": "hacked"}),
        ("delete_task", {"user_id": bob.id, "task_id": mom["id"]}),
    ]
    out = run(url, bob.token, attacks)
    for (name, args), result in zip(attacks, out[1:], strict=True):
        assert result.is_error, (name, args)
        text = text_of(result)
        assert "Call mum" not in text and "Buy milk" not in text
        if args["user_id"] == alice.id:
            assert "Not allowed" in text
        else:
            assert f"Task {mom['id']} not found" in text
    bob_list = run(url, bob.token, [("list_tasks", {"user_id": bob.id})])[1]
    assert structured(bob_list)["count"] == 0

    final = run(url, alice.token, [("list_tasks", {"user_id": alice.id}),
                                   ("delete_task", {"user_id": alice.id, "task_id": milk["id"]}),
                                   ("list_tasks", {"user_id": alice.id})])
    assert {t["title"] for t in structured(final[1])["tasks"]} == {"Buy milk", "Call mum"}
    assert [t["title"] for t in structured(final[3])["tasks"]] == ["Call mum"]


def test_mcp_requires_bearer_token(live_server: str) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(f"{live_server}/mcp", json=init, headers=headers)
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    r = httpx.post(f"{live_server}/mcp", json=init, headers={**headers, "Authorization": "Bearer nope"})
    assert r.status_code == 401 and "Invalid token" in r.json()["detail"]


def test_mcp_list_tasks_pages(live_server: str) -> None:
    with httpx.Client(base_url=live_server) as http:
        user = signup(http)
        for i in range(1, 8):
            http.post(f"/api/{user.id}/tasks", json={"title": f"Task {i}"}, headers=user.headers)
    out = run(f"{live_server}/mcp", user.token, [
        ("list_tasks", {"user_id": user.id, "limit": 3}),
        ("list_tasks", {"user_id": user.id, "limit": 3, "offset": 6}),
        ("list_tasks", {"user_id": user.id}),
    ])
    first, last, default = structured(out[1]), structured(out[2]), structured(out[3])
    assert [t["id"] for t in first["tasks"]] == [7, 6, 5] and first["count"] == 7 and first["next_offset"] == 3
    assert "offset=3" in first["more"]
    assert [t["id"] for t in last["tasks"]] == [1] and "next_offset" not in last
    assert default["limit"] == 50 and len(default["tasks"]) == 7


# --- the MCP SDK loads on the first /mcp request, not at the server's start (issue 22: 4) ---------


def test_starting_the_server_leaves_the_mcp_sdk_and_alembic_out() -> None:
    # Before: `import todo_api.server` imported the MCP SDK (~0.5 s of a pod's start) and
    # create_app alembic with mako and pygments (~0.2 s) for the head revision.
    code = ("import sys, todo_api.server, todo_api.migrations as m; m.head_revision(); "
            "print(sorted(n for n in ('mcp', 'todo_api.mcp_server', 'alembic', 'mako') if n in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BACKEND), str(COMMON)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_head_revision_read_from_the_version_files_is_alembics(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic.script import ScriptDirectory

    from todo_api import migrations

    def alembics() -> str | None:
        return ScriptDirectory.from_config(migrations.alembic_config("sqlite://")).get_current_head()

    migrations.head_revision.cache_clear()
    assert migrations.head_revision() == alembics() == "0003"
    # A history that is not one line (two heads): alembic's own answer (it refuses).
    versions = tmp_path / "versions"
    shutil.copytree(migrations.HERE / "versions", versions, ignore=shutil.ignore_patterns("__pycache__"))
    (versions / "0004_a.py").write_text('revision = "0004a"\ndown_revision = "0003"\n')
    (versions / "0004_b.py").write_text('revision: str = "0004b"\ndown_revision = "0003"\n')
    assert {migrations.revision_link(versions / n) for n in ("0004_a.py", "0004_b.py")} == {
        ("0004a", "0003"), ("0004b", "0003")}
    monkeypatch.setattr(migrations, "HERE", tmp_path)
    shutil.copy(migrations.__file__.replace("__init__.py", "env.py"), tmp_path / "env.py")
    migrations.head_revision.cache_clear()
    try:
        with pytest.raises(Exception, match="[Mm]ultiple heads"):
            migrations.head_revision()
    finally:
        migrations.head_revision.cache_clear()


def test_mcp_server_is_built_on_the_first_request_and_stopped_at_shutdown(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url))
    lazy = app.state.mcp
    served = serve_app(app)
    base = next(served)
    assert not lazy.loaded  # started (/started answered) without it
    r = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                   headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401  # the bearer gate of the built server
    assert lazy.loaded
    with httpx.Client(base_url=base) as http:
        user = signup(http)
    out = run(f"{base}/mcp", user.token, [("add_task", {"user_id": user.id, "title": "Lazy"})])
    assert structured(out[1])["task"]["title"] == "Lazy"
    next(served, None)  # shut the server down: the lifespan stops the session manager
    assert lazy._runner is not None and lazy._runner.done() and lazy._runner.exception() is None
