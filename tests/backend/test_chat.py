"""Chat endpoint: offline agent via HTTP, the OpenAI provider against a scripted fake server, LLM failures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import free_port, make_settings, signup
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
        ("slow_after_tool", "did not answer within"),  # the add_task already ran: it must be rolled back
        ("down", "could not be reached"),
    ],
    indirect=["fake_llm"],
)
def test_llm_errors_give_502_and_store_nothing(sqlite_url: str, fake_llm: tuple[FakeLLM, str], reason: str) -> None:
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
        assert client.get(f"/api/{user.id}/tasks", headers=user.headers).json()["total"] == 0
