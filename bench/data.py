"""Scale of data: the first page of the task list for a user with 10 tasks vs 10 000 tasks."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from bench.app import app_stack
from bench.client import ApiUser, signup
from bench.common import say, target, write_result
from bench.load import run_point
from bench.stack import Stack

BIG = int(os.environ.get("BENCH_BIG_TASKS", "10000"))
SMALL = 10
CONCURRENCY = 8
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))


async def _fill(user: ApiUser, count: int, parallel: int = 16) -> int:
    url = f"{user.base_url}{user.path('tasks')}"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    failures = 0
    async with httpx.AsyncClient(headers=user.headers, timeout=30) as client:
        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                i = queue.get_nowait()
                for _ in range(3):
                    try:
                        response = await client.post(url, json={"title": f"task number {i}"})
                        if response.status_code == 201:
                            break
                    except httpx.HTTPError:
                        pass
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(parallel)))
    return failures


def fill(user: ApiUser, count: int) -> None:
    failures = asyncio.run(_fill(user, count))
    if failures:
        raise RuntimeError(f"{failures} of {count} tasks could not be created")


def run(stack: Stack | None = None) -> dict[str, Any]:
    own = stack is None
    stack = stack or app_stack().up()
    try:
        backend = stack.service_url("backend")
        small, big = signup(backend), signup(backend)
        fill(small, SMALL)
        say(f"creating {BIG} tasks through the API ...")
        fill(big, BIG)
        rows = {}
        for label, user, count in (("10 tasks", small, SMALL), (f"{BIG} tasks", big, BIG)):
            url = f"{backend}{user.path('tasks')}"
            total = httpx.get(url, headers=user.headers, timeout=30).json()["total"]
            assert total == count, f"expected {count} tasks, the API reports {total}"
            point = run_point(f"first page, {label}", lambda w, s, u=url: ("GET", u, {}),
                              CONCURRENCY, DURATION_S, 2, headers=user.headers)
            rows[label] = {**point.to_dict(), "tasks": count}
            say(f"{label:12s} c={CONCURRENCY} {point.rps:.1f} req/s p50 {point.p50_ms:.1f} ms "
                f"p99 {point.p99_ms:.1f} ms errors {point.errors}")
        small_p99, big_p99 = rows["10 tasks"]["p99_ms"], rows[f"{BIG} tasks"]["p99_ms"]
        result = {
            "concurrency": CONCURRENCY, "duration_s": DURATION_S, "page_size": 50,
            "points": list(rows.values()),
            "ratio_p99": round(big_p99 / small_p99, 2),
            "targets": [target(f"first page p99 with {BIG} tasks <= 2x the p99 with 10 tasks",
                               big_p99 / small_p99, 2.0, "x")],
        }
        write_result("data", result)
        return result
    finally:
        if own:
            stack.down()
