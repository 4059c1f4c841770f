"""Chat agents: a deterministic offline one and one backed by the OpenAI Agents SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


class AgentError(Exception):
    """The language model could not answer; the message is a short reason."""


@dataclass
class AgentResult:
    response: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class ChatAgent(Protocol):
    provider: str
    model: str | None

    async def respond(
        self, conn: AsyncConnection, user_id: int, history: list[tuple[str, str]], message: str
    ) -> AgentResult: ...
