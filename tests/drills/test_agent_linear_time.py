"""Drill: the offline agent is linear-time on any message up to the 4000-character limit.

The old trailing-phrase regexes backtracked about cubically: "a" + " "*800 + "x" took 8 s
and "a" + " "*1600 + "x" 52 s, on the event loop. Here every hostile shape, at several
lengths up to the limit, must be understood (or not) in well under a second, and the time
for the longest must stay near 4x the time for a quarter of it (linear), far from the 16x
of quadratic growth. The whole turn (parse, task lookup, fuzzy matching against 300
tasks) is timed too, through the real agent on a real database.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.drills.local_apps import BACKEND_DIR

if str(BACKEND_DIR) not in sys.path:
    sys.path.insert(0, str(BACKEND_DIR))

from todo_api.agents.parse import parse
from todo_api.models import MESSAGE_MAX

HOSTILE: dict[str, Callable[[int], str]] = {
    "spaces": lambda n: "a" + " " * n + "x",
    "dots": lambda n: "a" + "." * n + "x",
    "punctuation run": lambda n: "mark task" + "!?." * (n // 3) + "x",
    "tabs and newlines": lambda n: "add" + " \t\n" * (n // 3) + "x",
    "mark .. done": lambda n: "mark " + " " * n + "x done",
    "rename without to": lambda n: "rename " + "a " * (n // 2),
    "rename many tos": lambda n: "rename " + "x to " * (n // 5),
    "is is is": lambda n: "x is " * (n // 5),
    "open parens": lambda n: "add x" + "(" * n,
    "hashes": lambda n: "delete " + "#" * n,
    "task task": lambda n: "task " * (n // 5),
    "edit colon": lambda n: "edit " + "a:" * (n // 2),
    "description words": lambda n: "add x" + " description" * (n // 12),
    "please thanks": lambda n: "add x" + " please" * (n // 7),
    "done done": lambda n: "mark x" + " done" * (n // 5),
}
LENGTHS = (MESSAGE_MAX // 4, MESSAGE_MAX // 2, MESSAGE_MAX - 10)


def _timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_parsing_is_fast_and_linear(shape: str) -> None:
    make = HOSTILE[shape]
    times = {n: _timed(lambda n=n: parse(make(n)[:MESSAGE_MAX])) for n in LENGTHS}
    longest = times[LENGTHS[-1]]
    assert longest < 0.05, f"{shape}: {longest:.3f}s for {LENGTHS[-1]} characters"
    # Linear: ~4x from a quarter of the limit to the limit (quadratic would be ~16x).
    # Small absolute times are noisy, so the ratio is only judged above 2 ms.
    if longest > 0.002:
        ratio = longest / max(times[LENGTHS[0]], 1e-6)
        assert ratio < 9, f"{shape}: {ratio:.1f}x from {LENGTHS[0]} to {LENGTHS[-1]} characters ({times})"


def test_whole_turns_are_fast_with_many_tasks(tmp_path: Path) -> None:
    """The full agent turn (with fuzzy matching over 300 tasks) stays well under a second."""
    from sqlalchemy import insert
    from todo_api import tools
    from todo_api.agents.offline import OfflineAgent
    from todo_api.db import Database
    from todo_api.migrations import upgrade
    from todo_api.models import users, utcnow

    url = f"sqlite:///{tmp_path / 'agent.db'}"
    upgrade(url)

    async def drill() -> dict[str, float]:
        db = Database(url)
        try:
            async with db.write() as conn:
                user_id = (await conn.execute(insert(users).values(
                    username="linear", password_hash="x", created_at=utcnow()).returning(users.c.id))).scalar_one()
                for i in range(300):
                    await tools.add_task(conn, user_id, f"errand number {i} about the {'abcdefgh'[i % 8]}x report")
            seconds: dict[str, float] = {}
            for shape, make in HOSTILE.items():
                message = make(MESSAGE_MAX - 10)[:MESSAGE_MAX]
                started = time.perf_counter()
                await OfflineAgent().respond(db, user_id, [], message)  # each tool call commits itself
                seconds[shape] = time.perf_counter() - started
            return seconds
        finally:
            await db.dispose()

    seconds = asyncio.run(drill())
    slow = {k: round(v, 3) for k, v in seconds.items() if v > 0.5}
    assert not slow, f"turns slower than 0.5 s: {slow}"
