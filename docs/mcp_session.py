"""Record an assistant's MCP session against `inv mcp`: "why is my backend not ready?"

A scripted assistant (no LLM: the built-in doctor does the diagnosis) connects
with the official MCP client over stdio, calls status, doctor and the logs of
the components the findings name, and prints the session as Markdown: every
tool call with its arguments and the structured result it got (long strings
and lists shortened, marked with "…"). docs/aiops.md shows one such run.

    TODO_DEPLOY_ROOT=... python docs/mcp_session.py > session.md
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "why is my backend not ready?"


def server_params(env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "invoke", "--search-root", str(ROOT), "mcp"],
        env={**os.environ, **(env or {})}, cwd=str(ROOT),
    )


def shorten(value: Any, chars: int = 240, items: int = 8) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + "…"
    if isinstance(value, list):
        kept = [shorten(v, chars, items) for v in value[:items]]
        return kept + ([f"… {len(value) - items} more"] if len(value) > items else [])
    if isinstance(value, dict):
        return {k: shorten(v, chars, items) for k, v in value.items()}
    return value


def _status_view(status: dict[str, Any]) -> dict[str, Any]:
    """The gates without the checks of those that passed (they say nothing here)."""
    gates = [{**g, "checks": [c for c in g["checks"] if c["verdict"] != "pass"]}
             for g in status["gates"]]
    return {**status, "gates": gates}


async def session(params: StdioServerParameters) -> list[tuple[str, dict[str, Any], Any]]:
    """The assistant's calls: (tool, arguments, structured result or error text)."""
    steps: list[tuple[str, dict[str, Any], Any]] = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()

        async def call(tool: str, arguments: dict[str, Any]) -> Any:
            result = await client.call_tool(tool, arguments)
            out = (" ".join(getattr(c, "text", "") for c in result.content) if result.is_error
                   else result.structured_content)
            steps.append((tool, arguments, out))
            return out

        await call("status", {})
        doctor = await call("doctor", {})
        named = " ".join(g["object"] for g in doctor.get("groups", []))
        await call("logs", {"component": "backend", "lines": 8})
        if "postgres" in named or "database" in named:
            await call("logs", {"component": "database", "lines": 5})
    return steps


def answer(steps: list[tuple[str, dict[str, Any], Any]]) -> str:
    """The reply, composed from the doctor's findings (what an assistant would quote)."""
    doctor = next(out for tool, _, out in steps if tool == "doctor")
    if doctor.get("healthy"):
        return f"The doctor finds no problem: {doctor['summary']}"
    lines = [f"The doctor found {doctor['summary']}:"]
    for group in doctor["groups"]:
        for f in group["findings"]:
            lines.append(f"- **{group['object']}**, {f['kind']}: {f['evidence']}  \n"
                         f"  Fix: {f['fix']}")
    return "\n".join(lines)


def markdown(steps: list[tuple[str, dict[str, Any], Any]]) -> str:
    out = [f"> **user:** {QUESTION}", ""]
    for tool, arguments, result in steps:
        shown = _status_view(result) if tool == "status" and isinstance(result, dict) else result
        out += [f"**tool call** `{tool}` `{json.dumps(arguments)}`", "",
                "```json", json.dumps(shorten(shown), indent=2, ensure_ascii=False), "```", ""]
    out += ["> **assistant:** " + answer(steps).replace("\n", "\n> "), ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(asyncio.run(session(server_params()))))
