"""Drill: one user who stores a lot (issue 19, items 2, 3 and 7's bulk delete), PostgreSQL, real backend.

A user with 10,000 tasks (inserted straight into the drill's database) and a conversation of
1,000 messages:
- creating one more task is refused 409 naming the limit (MAX_TASKS_PER_USER, default 10,000),
  and so is a chat turn in the full conversation (MAX_MESSAGES_PER_CONVERSATION, 1,000);
  creating a task costs about the same with or without the quota check (figures printed);
- "show my tasks" through chat answers under 64 KB and says how many there are in all
  (was: every task, 15.6 MB, in the reply, the tool call echo and the stored message);
- MCP list_tasks answers a page (was: 28 MB);
- the conversation's messages come by page (100, then older ones with ?before=);
- 8 concurrent such chats leave the backend's peak RSS under the chart's memory limit
  (was: 127 -> 414 MiB, limit 256 Mi);
- "yes" to "delete everything?" spares a task created after the question.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bench.client import ApiUser, signup
from tests.drills.local_apps import (
    LocalApp,
    peak_rss_mib,
    pod_memory_limit_mib,
    postgres_database,
    start_backend,
)

pytestmark = pytest.mark.timeout(240)
TASKS = 10_000
MESSAGES = 1_000
REPLY_BOUND = 64 * 1024


@pytest.fixture
def backend(tmp_path: Path, postgres_url: str) -> Iterator[tuple[LocalApp, str]]:
    with postgres_database(postgres_url, "quotas") as url:
        # Room for 8 chats at once from one user: the drill measures memory, not the limit.
        app = start_backend(tmp_path, DATABASE_URL=url, CHAT_PER_USER_IN_FLIGHT="8", CHAT_MAX_IN_FLIGHT="8",
                            SIGNUPS_PER_ADDRESS="1000", SIGNUPS_PER_ADDRESS_PER_HOUR="1000")
        try:
            yield app, url
        finally:
            app.stop()


def fill(url: str, user: ApiUser, tasks: int, messages: int) -> int:
    """`tasks` tasks (long titles and descriptions) and a conversation of `messages` messages."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO tasks (user_id, number, title, description, completed, created_at, updated_at) "
            "SELECT %(u)s, n, 'Task number ' || n || ' ' || repeat('t', 150), repeat('d', 900), n %% 3 = 0, "
            "now(), now() FROM generate_series(1, %(n)s) AS n", {"u": user.user_id, "n": tasks})
        conn.execute("UPDATE users SET task_seq = %s WHERE id = %s", (tasks, user.user_id))
        conv = conn.execute("INSERT INTO conversations (user_id, created_at, updated_at) VALUES (%s, now(), now()) "
                            "RETURNING id", (user.user_id,)).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO messages (conversation_id, user_id, role, content, created_at) "
            "SELECT %(c)s, %(u)s, CASE WHEN n %% 2 = 1 THEN 'user' ELSE 'assistant' END, "
            "'message ' || n || ' ' || repeat('m', 3000), now() FROM generate_series(1, %(n)s) AS n",
            {"c": conv, "u": user.user_id, "n": messages})
    return int(conv)


def create_latencies(http: httpx.Client, user: ApiUser, n: int = 30) -> list[float]:
    seconds = []
    for i in range(n):
        started = time.monotonic()
        response = http.post(user.path("tasks"), json={"title": f"timed {i}"}, headers=user.headers)
        seconds.append(time.monotonic() - started)
        assert response.status_code == 201, response.text
    return seconds


async def mcp_list(url: str, user: ApiUser, arguments: dict[str, Any]) -> Any:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=user.headers, timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool("list_tasks", {"user_id": user.user_id, **arguments})


def test_one_user_who_stores_a_lot(backend: tuple[LocalApp, str]) -> None:
    app, url = backend
    hoarder, fresh, spread = signup(app.url), signup(app.url), signup(app.url)
    conv = fill(url, hoarder, TASKS, MESSAGES)
    # `spread`: 5,000 tasks numbered up to 20,000 -> every create counts the tasks (the slow path)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO tasks (user_id, number, title, description, completed, created_at, updated_at) "
                     "SELECT %s, n * 4, 't', '', false, now(), now() FROM generate_series(1, 5000) AS n",
                     (spread.user_id,))
        conn.execute("UPDATE users SET task_seq = 20000 WHERE id = %s", (spread.user_id,))
    with httpx.Client(base_url=app.url, timeout=60) as http:
        # quotas
        refused = http.post(hoarder.path("tasks"), json={"title": "one too many"}, headers=hoarder.headers)
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == f"You have reached the limit of {TASKS} tasks; delete some to add more"
        full = http.post(hoarder.path("chat"), json={"conversation_id": conv, "message": "hi"},
                         headers=hoarder.headers)
        assert full.status_code == 409 and f"limit of {MESSAGES} messages" in full.json()["detail"], full.text
        fast, counted = create_latencies(http, fresh), create_latencies(http, spread)
        print(f"\ncreate-task p50: {statistics.median(fast) * 1000:.1f} ms (numbers under the quota), "
              f"{statistics.median(counted) * 1000:.1f} ms (5,000 tasks counted each time)")

        # "show my tasks" with 10,000 tasks
        started = time.monotonic()
        shown = http.post(hoarder.path("chat"), json={"message": "show my tasks"}, headers=hoarder.headers)
        took = time.monotonic() - started
        assert shown.status_code == 200, shown.text
        body = shown.json()
        print(f"'show my tasks' with {TASKS} tasks: {len(shown.content)} bytes in {took:.2f} s")
        assert len(shown.content) < REPLY_BOUND
        assert body["response"].startswith(f"You have {TASKS} tasks (showing the newest 50 of {TASKS}):")

        # the conversation's messages by page
        page = http.get(hoarder.path(f"conversations/{conv}/messages"), headers=hoarder.headers)
        older = http.get(hoarder.path(f"conversations/{conv}/messages"), headers=hoarder.headers,
                         params={"before": page.headers["X-Older-Before"], "limit": 200})
        print(f"messages of a {MESSAGES}-message conversation: first page {len(page.content)} bytes")
        assert len(page.json()) == 100 and page.json()[-1]["content"].startswith(f"message {MESSAGES} ")
        assert len(older.json()) == 200 and older.json()[-1]["content"].startswith(f"message {MESSAGES - 100} ")

        # MCP
        result = asyncio.run(mcp_list(app.url, hoarder, {}))
        biggest = asyncio.run(mcp_list(app.url, hoarder, {"limit": 100_000}))
        sizes = [sum(len(getattr(c, "text", "")) for c in r.content) for r in (result, biggest)]
        print(f"MCP list_tasks: {sizes[0]} bytes (default page), {sizes[1]} bytes (limit asked 100000)")
        assert not result.is_error and result.structured_content["count"] == TASKS
        assert len(biggest.structured_content["tasks"]) == 200 and sizes[1] < 400_000

        # memory: 8 such chats at once
        before = peak_rss_mib(app)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: http.post(hoarder.path("chat"), json={"message": "show my tasks"},
                                                        headers=hoarder.headers), range(8)))
        peak, limit = peak_rss_mib(app), pod_memory_limit_mib("backend")
        print(f"backend peak RSS: {before:.0f} MiB before, {peak:.0f} MiB after 8 concurrent chats "
              f"(limit {limit} MiB); replies {[len(r.content) for r in replies]} bytes")
        assert all(r.status_code == 200 and len(r.content) < REPLY_BOUND for r in replies)
        assert peak < limit * 0.75


def test_delete_all_spares_a_task_created_after_the_question(backend: tuple[LocalApp, str]) -> None:
    app, _ = backend
    user = signup(app.url)
    with httpx.Client(base_url=app.url, timeout=30) as http:
        for title in ("one", "two", "three"):
            http.post(user.path("tasks"), json={"title": title}, headers=user.headers)
        question = http.post(user.path("chat"), json={"message": "delete everything"}, headers=user.headers).json()
        assert "all 3 of your tasks" in question["response"]
        http.post(user.path("tasks"), json={"title": "added after the question"}, headers=user.headers)
        yes = http.post(user.path("chat"), json={"conversation_id": question["conversation_id"], "message": "yes"},
                        headers=user.headers).json()
        left = http.get(user.path("tasks"), headers=user.headers).json()
    assert [t["title"] for t in left["items"]] == ["added after the question"], yes["response"]
    assert "Deleted 3 tasks" in yes["response"]
