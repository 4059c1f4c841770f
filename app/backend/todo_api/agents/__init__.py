"""Chat agents: a deterministic offline one and one backed by the OpenAI Agents SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from todo_api.db import Database


class AgentError(Exception):
    """The language model could not answer; the message is a short reason."""


@dataclass
class AgentResult:
    response: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class ChatAgent(Protocol):
    """Answers one chat turn. It gets the Database, not a connection: each tool call takes a
    pooled connection for its own short statement/transaction, none is held while the model
    thinks."""

    provider: str

    @property
    def model(self) -> str | None:  # read-only here, so an agent's `model: str` satisfies it
        ...

    async def respond(
        self, db: Database, user_id: int, history: list[tuple[str, str]], message: str
    ) -> AgentResult: ...
