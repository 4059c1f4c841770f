"""Agent backed by the OpenAI Agents SDK, against any OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
from agents import (
    Agent,
    AgentsException,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.tool import Tool
from openai import AsyncOpenAI

from todo_api import tools
from todo_api.agents import AgentError, AgentResult
from todo_api.db import Database
from todo_api.settings import Settings

INSTRUCTIONS = (
    "You are a friendly assistant that manages the user's todo list. Use the tools to add, list, "
    "complete, delete and update tasks; never invent task ids: list tasks first when unsure. "
    "After acting, confirm in one or two short sentences what you did. If a request is unclear, ask."
)


class OpenAIAgent:
    provider = "openai"

    def __init__(self, settings: Settings) -> None:
        set_tracing_disabled(True)
        self.model = settings.llm_model
        self.timeout = settings.llm_timeout_seconds
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        self.client = AsyncOpenAI(
            api_key=key or "unset", base_url=settings.openai_base_url, timeout=self.timeout, max_retries=0
        )

    def _tools(self, db: Database, user_id: int, calls: list[dict[str, Any]]) -> list[Tool]:
        # The model may call tools in parallel: one at a time keeps a chat to one pooled
        # connection (CHAT_MAX_IN_FLIGHT is sized on that). Each call is its own short
        # transaction; nothing is held while the model thinks.
        one_at_a_time = asyncio.Lock()

        async def run(name: str, **arguments: Any) -> str:
            clean = {k: v for k, v in arguments.items() if v is not None}
            try:
                async with one_at_a_time, db.atomic() as conn:
                    result = await getattr(tools, name)(conn, user_id, **clean)
            except tools.ToolError as exc:
                result = {"error": str(exc)}
            except tools.LimitReached as exc:
                result = {"error": str(exc.detail)}
            calls.append({"name": name, "arguments": clean, "result": result})
            return json.dumps(result)

        @function_tool
        async def add_task(title: str, description: str | None = None) -> str:
            """Add a task to the user's list.

            Args:
                title: Short title of the task (at most 200 characters).
                description: Optional longer details.
            """
            return await run("add_task", title=title, description=description)

        @function_tool
        async def list_tasks(status: str = "all", limit: int = tools.LIST_LIMIT, offset: int = 0) -> str:
            """List the user's tasks, newest first, one page at a time: `count` is how many there
            are in all; when more follow, `next_offset` is the offset to ask for next.

            Args:
                status: One of "all", "pending" or "completed".
                limit: Tasks in this page (1 to 200, default 50).
                offset: How many of the newest tasks to skip (0 for the first page).
            """
            return await run("list_tasks", status=status, limit=limit, offset=offset)

        @function_tool
        async def complete_task(task_id: int) -> str:
            """Mark a task as completed.

            Args:
                task_id: The task's number, as list_tasks shows it (#1, #2 ... per user).
            """
            return await run("complete_task", task_id=task_id)

        @function_tool
        async def delete_task(task_id: int) -> str:
            """Delete a task.

            Args:
                task_id: The task's number, as list_tasks shows it (#1, #2 ... per user).
            """
            return await run("delete_task", task_id=task_id)

        @function_tool
        async def update_task(task_id: int, title: str | None = None, description: str | None = None) -> str:
            """Change a task's title and/or description.

            Args:
                task_id: The task's number, as list_tasks shows it (#1, #2 ... per user).
                title: The new title, if it changes.
                description: The new description, if it changes.
            """
            return await run("update_task", task_id=task_id, title=title, description=description)

        return [add_task, list_tasks, complete_task, delete_task, update_task]

    async def respond(
        self, db: Database, user_id: int, history: list[tuple[str, str]], message: str
    ) -> AgentResult:
        calls: list[dict[str, Any]] = []
        agent = Agent(
            name="Todo assistant",
            instructions=INSTRUCTIONS,
            model=OpenAIChatCompletionsModel(model=self.model, openai_client=self.client),
            tools=self._tools(db, user_id, calls),
        )
        items: list[Any] = [{"role": role, "content": content} for role, content in history]
        items.append({"role": "user", "content": message})
        try:
            result = await asyncio.wait_for(Runner.run(agent, items, max_turns=8), timeout=self.timeout)
        except (TimeoutError, openai.APITimeoutError):
            raise AgentError(f"the language model did not answer within {self.timeout:g} seconds") from None
        except openai.AuthenticationError:
            raise AgentError("the language model rejected the API key") from None
        except openai.APIConnectionError:
            raise AgentError("the language model service could not be reached") from None
        except openai.APIStatusError as exc:
            raise AgentError(f"the language model service returned HTTP {exc.status_code}") from None
        except AgentsException as exc:
            raise AgentError(f"the language model misbehaved ({type(exc).__name__})") from None
        except openai.OpenAIError as exc:
            raise AgentError(f"the language model call failed ({type(exc).__name__})") from None
        text = str(result.final_output or "").strip() or "Done."
        return AgentResult(response=text, tool_calls=calls)
