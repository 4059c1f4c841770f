"""A local OpenAI-compatible Chat Completions server for drills: a model that takes its time.

`LLMStub` serves POST /v1/chat/completions on 127.0.0.1 (a free port, uvicorn in a thread).
Each request waits `delay` seconds (asyncio: concurrent requests wait side by side), then
answers. With `tool` set, a request whose messages hold no tool result answers with that
tool call first; once a tool result is in the messages it answers in text, naming the
result's `count` when it has one. `requests` counts the requests; `delay` and `tool` may be
changed between phases. The backend uses it with LLM_PROVIDER=openai,
OPENAI_API_KEY=stub-key, OPENAI_BASE_URL=stub.base_url.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Self

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.drills.local_apps import free_port


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": "stub-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _tool_result(messages: list[dict[str, Any]]) -> Any | None:
    for message in reversed(messages):
        if message.get("role") == "tool":
            try:
                return json.loads(message.get("content") or "null")
            except ValueError:
                return message.get("content")
    return None


class LLMStub:
    def __init__(self, delay: float = 0.0, tool: tuple[str, dict[str, Any]] | None = None) -> None:
        self.delay = delay
        self.tool = tool
        self.requests = 0
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _complete(self, request: Request) -> JSONResponse:
        self.requests += 1
        body = await request.json()
        await asyncio.sleep(self.delay)
        result = _tool_result(body.get("messages", []))
        if result is None and self.tool is not None:
            name, arguments = self.tool
            call = {"id": f"call_{self.requests}", "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)}}
            return JSONResponse(completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"))
        text = "Done."
        if isinstance(result, dict) and "count" in result:
            text = f"You have {result['count']} tasks; here are the newest {len(result.get('tasks', []))}."
        return JSONResponse(completion({"role": "assistant", "content": text}, "stop"))

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the LLM stub did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _self_check() -> None:  # python -m tests.drills.llm_stub
    with LLMStub(delay=0.2, tool=("list_tasks", {})) as stub:
        first = httpx.post(f"{stub.base_url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        print(first.json()["choices"][0]["message"], stub.requests)


if __name__ == "__main__":
    _self_check()
