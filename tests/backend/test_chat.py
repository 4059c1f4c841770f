"""Chat endpoint: offline agent via HTTP, the OpenAI provider against a scripted fake server, LLM failures."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import free_port, make_settings, signup
from todo_api.agents import AgentResult
from todo_api.db import Database
from todo_api.routes.chat import ECHOED_TASKS, OLDER_HEADER, REPLY_MAX, TOOL_CALLS_ECHOED
from todo_api.server import create_app


def test_offline_chat_flow(client: TestClient) -> None:
    user = signup(client)
    base = f"/api/{user.id}"
    r = client.post(f"{base}/chat", json={"message": "add a task to buy milk"}, headers=user.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tool_calls"][0]["name"] == "add_task" and "Buy milk" in body["response"]
    conv = body["conversation_id"]
    tasks = client.get(f"{base}/tasks", headers=user.headers).json()["items"]
    assert [t["title"] for t in tasks] == ["Buy milk"]

    r2 = client.post(f"{base}/chat", json={"conversation_id": conv, "message": "show my tasks"}, headers=user.headers)
    assert r2.json()["conversation_id"] == conv and "Buy milk" in r2.json()["response"]

    msgs = client.get(f"{base}/conversations/{conv}/messages", headers=user.headers).json()
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == "add a task to buy milk" and set(msgs[0]) == {"id", "role", "content", "created_at"}

    long_first = "x" * 100
    r3 = client.post(f"{base}/chat", json={"message": long_first}, headers=user.headers)
    convs = client.get(f"{base}/conversations", headers=user.headers).json()
    assert [c["id"] for c in convs] == [r3.json()["conversation_id"], conv]  # newest first
    assert convs[1]["title"] == "add a task to buy milk" and len(convs[0]["title"]) <= 60


def test_chat_validation_and_foreign_conversation(client: TestClient) -> None:
    alice, bob = signup(client), signup(client)
    conv = client.post(f"/api/{alice.id}/chat", json={"message": "add walk the dog"}, headers=alice.headers).json()
    cid = conv["conversation_id"]
    huge = client.post(f"/api/{bob.id}/chat", json={"message": "a" * 100_000}, headers=bob.headers)
    assert huge.status_code == 413 and "larger than 65536 bytes" in huge.json()["detail"]
    long = client.post(f"/api/{bob.id}/chat", json={"message": "a" * 4001}, headers=bob.headers)
    assert long.status_code == 422 and long.json()["detail"] == "message: must be at most 4000 characters"
    blank = client.post(f"/api/{bob.id}/chat", json={"message": "   "}, headers=bob.headers)
    assert blank.status_code == 422
    for r in (
        client.post(f"/api/{bob.id}/chat", json={"conversation_id": cid, "message": "show my tasks"},
                    headers=bob.headers),
        client.get(f"/api/{bob.id}/conversations/{cid}/messages", headers=bob.headers),
        client.post(f"/api/{bob.id}/chat", json={"conversation_id": 999999, "message": "hi"}, headers=bob.headers),
    ):
        assert r.status_code == 404 and "Conversation" in r.json()["detail"] and "walk" not in r.text
    assert client.get(f"/api/{bob.id}/conversations", headers=bob.headers).json() == []
    listing = client.post(f"/api/{bob.id}/chat", json={"message": "show my tasks"}, headers=bob.headers).json()
    assert "walk" not in listing["response"].lower()
    assert client.get(f"/api/{bob.id}/tasks", headers=bob.headers).json()["total"] == 0


# --- a fake OpenAI-compatible server -----------------------------------------------------


class FakeLLM:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def make_handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if fake.mode == "401":
                self._send(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}})
                return
            if fake.mode == "slow":
                time.sleep(3)
            if any(m.get("role") == "tool" for m in body["messages"]):
                if fake.mode == "slow_after_tool":
                    time.sleep(3)
                self._send(200, _completion({"role": "assistant", "content": "I added Buy milk to your list."},
                                            "stop"))
                return
            call = {"id": "call_1", "type": "function",
                    "function": {"name": "add_task", "arguments": json.dumps({"title": "Buy milk"})}}
            self._send(200, _completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"))

    return Handler


@pytest.fixture
def fake_llm(request: pytest.FixtureRequest) -> Iterator[tuple[FakeLLM, str]]:
    fake = FakeLLM(getattr(request, "param", "ok"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    # shutdown() waits for the loop to poll: every 0.5 s by default
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def openai_client(db_url: str, base_url: str) -> TestClient:
    settings = make_settings(db_url, openai_api_key="sk-test-key", openai_base_url=base_url,
                             llm_timeout_seconds=1.5, llm_model="fake-model")
    settings = settings.model_copy(update={"llm_provider": "openai"})
    return TestClient(create_app(settings))


def test_openai_provider_end_to_end(db_url: str, fake_llm: tuple[FakeLLM, str]) -> None:
    fake, base_url = fake_llm
    with openai_client(db_url, base_url) as client:
        assert client.get("/api/meta").json()["agent"] == {"provider": "openai", "model": "fake-model"}
        user = signup(client)
        r = client.post(f"/api/{user.id}/chat", json={"message": "please add buy milk"}, headers=user.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["response"] == "I added Buy milk to your list."
        assert len(body["tool_calls"]) == 1
        call = body["tool_calls"][0]
        assert call["name"] == "add_task" and call["arguments"] == {"title": "Buy milk"}
        assert call["result"]["task"]["title"] == "Buy milk" and call["result"]["task"]["user_id"] == user.id
        items = client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["items"]
        assert [t["title"] for t in items] == ["Buy milk"]
        msgs = client.get(f"/api/{user.id}/conversations/{body['conversation_id']}/messages",
                          headers=user.headers).json()
        assert [m["content"] for m in msgs] == ["please add buy milk", "I added Buy milk to your list."]
    assert len(fake.requests) == 2 and fake.requests[0]["path"] == "/v1/chat/completions"
    assert fake.requests[0]["auth"] == "Bearer sk-test-key"
    tool_names = {t["function"]["name"] for t in fake.requests[0]["body"]["tools"]}
    assert tool_names == {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
    # user_id is bound server-side, never a model argument
    assert all("user_id" not in t["function"]["parameters"]["properties"] for t in fake.requests[0]["body"]["tools"])


@pytest.mark.parametrize(
    ("fake_llm", "reason"),
    [
        ("401", "rejected the API key"),
        ("slow", "did not answer within"),
        ("slow_after_tool", "did not answer within"),  # the add_task already ran (and stays: its own transaction)
        ("down", "could not be reached"),
    ],
    indirect=["fake_llm"],
)
def test_llm_errors_give_502_and_store_no_turn(sqlite_url: str, fake_llm: tuple[FakeLLM, str], reason: str) -> None:
    fake, base_url = fake_llm
    if fake.mode == "down":
        base_url = f"http://127.0.0.1:{free_port()}/v1"
    with openai_client(sqlite_url, base_url) as client:
        user = signup(client)
        started = time.monotonic()
        r = client.post(f"/api/{user.id}/chat", json={"message": "add buy milk"}, headers=user.headers)
        assert time.monotonic() - started < 10
        assert r.status_code == 502, r.text
        detail = r.json()["detail"]
        assert detail.startswith("The assistant could not answer: ") and reason in detail
        assert detail.endswith("Your message was not sent; try again.")
        assert "sk-test-key" not in r.text
        assert client.get(f"/api/{user.id}/conversations", headers=user.headers).json() == []
        # Tool calls commit as they run (no transaction is held while the model thinks).
        expected = 1 if fake.mode == "slow_after_tool" else 0
        assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == expected


# --- a turn holds no connection while the agent thinks; limits, deadline and bounds --------


class ScriptedAgent:
    """Sleeps, then answers `reply` with `calls` tool calls echoed."""

    provider = "scripted"
    model: str | None = None

    def __init__(self, seconds: float = 0.0, reply: str = "ok", calls: int = 0) -> None:
        self.seconds, self.reply, self.calls = seconds, reply, calls

    async def respond(self, db: Database, user_id: int, history: list[tuple[str, str]], message: str) -> AgentResult:
        await asyncio.sleep(self.seconds)
        listing = [{"id": n, "title": f"t{n}", "description": "d" * 900, "completed": False} for n in range(50)]
        return AgentResult(self.reply, [{"name": "list_tasks", "arguments": {},
                                         "result": {"n": i, "count": 50, "tasks": listing}}
                                        for i in range(self.calls)])


def scripted_client(db_url: str, agent: ScriptedAgent, **extra: Any) -> TestClient:
    return TestClient(create_app(make_settings(db_url, **extra), agent=agent))


def test_a_slow_agent_holds_no_database_connection(db_url: str) -> None:
    # One pooled connection: the old route held it for the whole agent call, so the
    # create-task below waited DB_POOL_TIMEOUT_SECONDS and got 503.
    with scripted_client(db_url, ScriptedAgent(seconds=3), db_pool_size=1, db_pool_timeout_seconds=1) as client:
        user = signup(client)
        with ThreadPoolExecutor(1) as pool:
            chat = pool.submit(client.post, f"/api/{user.id}/chat", json={"message": "hi"}, headers=user.headers)
            time.sleep(0.8)
            started = time.monotonic()
            created = client.post(f"/api/{user.id}/tasks", json={"title": "while the model thinks"},
                                  headers=user.headers)
            elapsed = time.monotonic() - started
            assert created.status_code == 201, created.text
            assert elapsed < 1.0 and not chat.done()
            assert chat.result().status_code == 200


def test_chats_in_flight_are_limited_per_user_and_in_all(sqlite_url: str) -> None:
    agent = ScriptedAgent(seconds=1.5)
    with scripted_client(sqlite_url, agent, chat_per_user_in_flight=1, chat_max_in_flight=2) as client:
        alice, bob, carol = signup(client), signup(client), signup(client)

        def chat(user: Any) -> Any:
            return client.post(f"/api/{user.id}/chat", json={"message": "hi"}, headers=user.headers)

        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(chat, alice)
            time.sleep(0.3)
            second = chat(alice)
            assert second.status_code == 429 and second.headers["Retry-After"]
            assert "1 messages being answered" in second.json()["detail"]
            other = pool.submit(chat, bob)
            time.sleep(0.3)
            third = chat(carol)
            assert third.status_code == 429 and "as many chats as it can (2)" in third.json()["detail"]
            assert first.result().status_code == 200 and other.result().status_code == 200
        assert chat(carol).status_code == 200  # the slots are given back


def test_the_agent_is_cut_at_the_deadline(sqlite_url: str) -> None:
    with scripted_client(sqlite_url, ScriptedAgent(seconds=30), llm_timeout_seconds=0.2) as client:
        user = signup(client)
        started = time.monotonic()
        r = client.post(f"/api/{user.id}/chat", json={"message": "hi"}, headers=user.headers)
        assert time.monotonic() - started < 3
        assert r.status_code == 502
        assert r.json()["detail"] == ("The assistant could not answer: it did not answer within 0.2 seconds. "
                                      "Your message was not sent; try again.")
        assert client.get(f"/api/{user.id}/conversations", headers=user.headers).json() == []


def test_reply_and_tool_calls_are_capped(sqlite_url: str) -> None:
    with scripted_client(sqlite_url, ScriptedAgent(reply="x" * 50_000, calls=50)) as client:
        user = signup(client)
        r = client.post(f"/api/{user.id}/chat", json={"message": "hi"}, headers=user.headers)
        body = r.json()
        assert len(body["response"]) == REPLY_MAX and body["response"].endswith("…")
        assert len(body["tool_calls"]) == TOOL_CALLS_ECHOED
        echo = body["tool_calls"][0]["result"]
        assert echo["count"] == 50 and echo["tasks"][0] == {"id": 0, "title": "t0", "completed": False}
        assert len(echo["tasks"]) == ECHOED_TASKS and len(r.content) < 64 * 1024
        stored = client.get(f"/api/{user.id}/conversations/{body['conversation_id']}/messages",
                            headers=user.headers).json()
        assert stored[1]["content"] == body["response"]
        # a message stored before the cap is cut when read back (history and listing)
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
            db.execute("UPDATE messages SET content = ? WHERE id = ?", ("y" * 100_000, stored[1]["id"]))
        legacy = client.get(f"/api/{user.id}/conversations/{body['conversation_id']}/messages",
                            headers=user.headers).json()[1]["content"]
        assert len(legacy) == REPLY_MAX and legacy.endswith("…")


def test_messages_are_listed_by_page(sqlite_url: str) -> None:
    with scripted_client(sqlite_url, ScriptedAgent()) as client:
        user = signup(client)
        base = f"/api/{user.id}"
        conv = client.post(f"{base}/chat", json={"message": "m0"}, headers=user.headers).json()["conversation_id"]
        for i in range(1, 6):
            client.post(f"{base}/chat", json={"conversation_id": conv, "message": f"m{i}"}, headers=user.headers)
        url = f"{base}/conversations/{conv}/messages"
        newest = client.get(url, params={"limit": 4}, headers=user.headers)
        assert [m["content"] for m in newest.json()] == ["m4", "ok", "m5", "ok"]
        older = client.get(url, params={"limit": 4, "before": newest.headers[OLDER_HEADER]}, headers=user.headers)
        assert [m["content"] for m in older.json()] == ["m2", "ok", "m3", "ok"]
        last = client.get(url, params={"limit": 4, "before": older.headers[OLDER_HEADER]}, headers=user.headers)
        assert [m["content"] for m in last.json()] == ["m0", "ok", "m1", "ok"] and OLDER_HEADER not in last.headers
        assert len(client.get(url, headers=user.headers).json()) == 12  # default page: 100
        bad = client.get(url, params={"limit": 201}, headers=user.headers)
        assert bad.status_code == 422 and "limit" in bad.json()["detail"]


def test_conversation_and_message_quotas(sqlite_url: str) -> None:
    with scripted_client(sqlite_url, ScriptedAgent(), max_conversations_per_user=2,
                         max_messages_per_conversation=4, max_tasks_per_user=3) as client:
        user = signup(client)
        base = f"/api/{user.id}"
        conv = client.post(f"{base}/chat", json={"message": "a"}, headers=user.headers).json()["conversation_id"]
        assert client.post(f"{base}/chat", json={"conversation_id": conv, "message": "b"},
                           headers=user.headers).status_code == 200
        full = client.post(f"{base}/chat", json={"conversation_id": conv, "message": "c"}, headers=user.headers)
        assert full.status_code == 409
        assert full.json()["detail"] == ("This conversation has reached the limit of 4 messages; "
                                         "start a new conversation")
        assert client.post(f"{base}/chat", json={"message": "d"}, headers=user.headers).status_code == 200
        third = client.post(f"{base}/chat", json={"message": "e"}, headers=user.headers)
        assert third.status_code == 409 and "limit of 2 conversations" in third.json()["detail"]
        for i in range(3):
            assert client.post(f"{base}/tasks", json={"title": f"t{i}"}, headers=user.headers).status_code == 201
        refused = client.post(f"{base}/tasks", json={"title": "one too many"}, headers=user.headers)
        assert refused.status_code == 409
        assert refused.json()["detail"] == "You have reached the limit of 3 tasks; delete some to add more"
        assert client.delete(f"{base}/tasks/1", headers=user.headers).status_code == 204
        assert client.post(f"{base}/tasks", json={"title": "room again"}, headers=user.headers).status_code == 201


def test_a_retried_chat_with_its_idempotency_key_runs_once(client: TestClient) -> None:
    """The reply to "add a task to pay rent" was lost and the client sends it again: with the
    same Idempotency-Key it gets the first answer, and no second task or turn is made."""
    user = signup(client)
    base = f"/api/{user.id}"
    keyed = {**user.headers, "Idempotency-Key": "chat-1"}
    first = client.post(f"{base}/chat", json={"message": "add a task to pay rent"}, headers=keyed)
    again = client.post(f"{base}/chat", json={"message": "add a task to pay rent"}, headers=keyed)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert client.get(f"{base}/tasks", headers=user.headers).json()["total"] == 1
    conv = first.json()["conversation_id"]
    assert len(client.get(f"{base}/conversations/{conv}/messages", headers=user.headers).json()) == 2
    reused = client.post(f"{base}/chat", json={"message": "add a task to pay bills"}, headers=keyed)
    assert reused.status_code == 422
    unkeyed = client.post(f"{base}/chat", json={"message": "add a task to pay rent"}, headers=user.headers)
    assert unkeyed.status_code == 200
    assert client.get(f"{base}/tasks", headers=user.headers).json()["total"] == 2
