"""Load generators, closed loop, fixed duration, their own CPU time reported next to every
figure (`client_cpu_s`): they run on the same 2 cores as the cluster, and a saturated
client caps the numbers.

- `wrk_point`: Debian's `wrk` (C, epoll, one thread): the throughput figures. About a
  tenth of the Python client's CPU per request, so the server is what gets measured.
- `run_point`: asyncio + httpx workers (per-request factories; bench/data.py).
"""

from __future__ import annotations

import asyncio
import re
import resource
import shutil
import subprocess
import tempfile
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


# ---- wrk ----------------------------------------------------------------------------------

WRK_INSTALL = "apt-get install -y wrk"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, rate, latency percentiles (ms), max, non-2xx and socket errors from `wrk --latency`."""
    out: dict[str, Any] = {}
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if not done:
        raise ValueError(f"wrk printed no result:\n{output}")
    out["requests"] = int(done.group(1))
    out["duration_s"] = round(_ms(done.group(2) + done.group(3)) / 1000, 2)
    out["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    for pct in ("50", "75", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        out[f"p{pct}_ms"] = round(_ms(found.group(1)), 2) if found else float("nan")
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    out["max_ms"] = round(_ms(latency.group(3)), 2) if latency else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    out["socket_errors"] = sum(int(g) for g in sock.groups()) if sock else 0
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_script(method: str = "GET", body: str | None = None, unique_title: bool = False) -> str:
    """A wrk Lua script: a fixed method/body, or POST bodies with a new title each request."""
    if unique_title:
        return ('local n = 0\n'
                'request = function()\n'
                '  n = n + 1\n'
                '  return wrk.format("POST", nil, nil, \'{"title":"bench task \' .. n .. \'"}\')\n'
                'end\n')
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append("wrk.body = " + json_lua(body))
    return "\n".join(lines) + "\n"


def json_lua(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_point(route: str, url: str, concurrency: int, duration: float = 10, warmup: float = 2, *,
              headers: dict[str, str] | None = None, script: str | None = None,
              timeout: float = 30) -> Point:
    """One measurement with wrk: `concurrency` connections on one thread for `duration` s,
    after `warmup` s of the same load that is not recorded."""
    args = ["wrk", "-t1", f"-c{concurrency}", "--latency", f"--timeout={int(timeout)}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script:
            lua.write(script)
            lua.flush()
            args += ["-s", lua.name]
        if warmup > 0:
            subprocess.run([*args, f"-d{max(1, round(warmup))}s", url], capture_output=True, text=True,
                           timeout=warmup + timeout + 30, check=False)
        cpu0 = _children_cpu()
        done = subprocess.run([*args, f"-d{max(1, round(duration))}s", url], capture_output=True, text=True,
                              timeout=duration + timeout + 30, check=False)
        cpu = _children_cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    figures = parse_wrk(done.stdout)
    errors = figures["non_2xx"] + figures["socket_errors"]
    return Point(
        route=route, concurrency=concurrency, duration_s=figures["duration_s"], requests=figures["requests"],
        errors=errors, rps=round(figures["rps"], 1), p50_ms=figures["p50_ms"], p90_ms=figures["p90_ms"],
        p99_ms=figures["p99_ms"], max_ms=figures["max_ms"], client_cpu_s=round(cpu, 2),
        statuses={"2xx": figures["requests"] - figures["non_2xx"], "non-2xx": figures["non_2xx"],
                  "socket errors": figures["socket_errors"]},
    )
