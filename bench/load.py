"""A bounded asyncio + httpx load generator: N workers, closed loop, fixed duration.

It runs on the same 2 cores as the cluster, so its own CPU time is measured and
reported next to every figure (`client_cpu_s`): a saturated client caps the numbers.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

# A request factory: given the worker and sequence number, (method, url, kwargs).
RequestFactory = Callable[[int, int], tuple[str, str, dict[str, Any]]]


@dataclass
class Point:
    route: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_s: float
    statuses: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(route: str, factory: RequestFactory, concurrency: int, duration: float,
               warmup: float, ok: Callable[[int], bool], timeout: float,
               headers: dict[str, str] | None, cookies: dict[str, str] | None) -> Point:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers,
                                 cookies=cookies) as client:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        errors = 0
        recording = False
        began = stop_at = 0.0

        async def worker(wid: int) -> None:
            nonlocal errors
            seq = 0
            while True:
                now = time.perf_counter()
                if recording and now >= stop_at:
                    return
                method, url, kwargs = factory(wid, seq)
                seq += 1
                start = time.perf_counter()
                try:
                    response = await client.request(method, url, **kwargs)
                    code = str(response.status_code)
                    good = ok(response.status_code)
                except httpx.HTTPError as exc:
                    code, good = type(exc).__name__, False
                elapsed = time.perf_counter() - start
                if recording and began <= start < stop_at:
                    latencies.append(elapsed)
                    statuses[code] = statuses.get(code, 0) + 1
                    if not good:
                        errors += 1

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.sleep(warmup)
        cpu0 = _cpu()
        began = time.perf_counter()
        stop_at = began + duration
        recording = True
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
        cpu = _cpu() - cpu0
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    return Point(
        route=route, concurrency=concurrency, duration_s=round(wall, 2), requests=len(ms),
        errors=errors, rps=round(len(ms) / wall, 1) if wall else 0.0,
        p50_ms=round(percentile(ms, 50), 2), p90_ms=round(percentile(ms, 90), 2),
        p99_ms=round(percentile(ms, 99), 2), max_ms=round(ms[-1], 2) if ms else float("nan"),
        client_cpu_s=round(cpu, 2), statuses=statuses,
    )


def run_point(route: str, factory: RequestFactory, concurrency: int, duration: float = 10,
              warmup: float = 2, ok: Callable[[int], bool] = lambda s: 200 <= s < 300,
              timeout: float = 30, headers: dict[str, str] | None = None,
              cookies: dict[str, str] | None = None) -> Point:
    """One measurement: `concurrency` closed-loop workers for `duration` s after `warmup` s."""
    return asyncio.run(_run(route, factory, concurrency, duration, warmup, ok, timeout,
                            headers, cookies))
