"""The MCP call log: one JSON line per tool call in `.state/mcp-calls.jsonl`.

Each line has the time, the tool, its arguments (every secret value of the
settings replaced by ***, and any argument named like a secret setting masked
whole), the outcome (ok | refused | error), how long it took and a short summary.
The file is bounded: past MAX_BYTES it is moved to `mcp-calls.1.jsonl`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from todo_deploy.config import SECRET_KEYS
from todo_deploy.tools.commands import scrub

FILE_NAME = "mcp-calls.jsonl"
MAX_BYTES = 2 * 1024 * 1024
SUMMARY_CHARS = 500
Outcome = Literal["ok", "refused", "error"]

_lock = threading.Lock()


def masked(value: Any, secrets: Sequence[str]) -> Any:
    """`value` with every secret (and every key naming a secret setting) masked."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: "***" if str(k).upper() in SECRET_KEYS else masked(v, secrets)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, secrets) for v in value]
    return value


def append(
    state_dir: Path,
    tool: str,
    arguments: dict[str, Any],
    outcome: Outcome,
    seconds: float,
    summary: str,
    secrets: Sequence[str],
) -> dict[str, Any]:
    """Write one call's line and return it."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "tool": tool,
        "arguments": masked(arguments, secrets),
        "outcome": outcome,
        "seconds": round(seconds, 3),
        "summary": scrub(summary, secrets)[:SUMMARY_CHARS],
    }
    path = state_dir / FILE_NAME
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with _lock:
        state_dir.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size + len(line) > MAX_BYTES:
            path.replace(state_dir / FILE_NAME.replace(".jsonl", ".1.jsonl"))
        with path.open("a", encoding="utf-8") as out:
            out.write(line)
    return entry


def read(state_dir: Path) -> list[dict[str, Any]]:
    """Every logged call, oldest first (tests, and anyone auditing a session)."""
    path = state_dir / FILE_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
