"""Footprint: each pod's memory (its container's cgroup) at idle and under load."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from bench.app import app_stack
from bench.client import WebClient, signup
from bench.common import container_memory, mib, say, target, write_result
from bench.load import run_point
from bench.stack import Stack

TARGET_MIB = {"backend": 150, "frontend": 100}
COMPONENTS = ("backend", "frontend", "database")


def sample(stack: Stack) -> dict[str, dict[str, float]]:
    out = {}
    for component in COMPONENTS:
        for pod in stack.pods(component):
            out[pod["metadata"]["name"]] = {
                "component": component,
                **{k: mib(v) for k, v in container_memory(pod).items()},
            }
    return out


def run(stack: Stack | None = None, seconds: float = 15) -> dict[str, Any]:
    own = stack is None
    stack = stack or app_stack().up()
    try:
        time.sleep(3)
        idle = sample(stack)
        backend, frontend = stack.service_url("backend"), stack.service_url("frontend")
        user = signup(backend)
        web = WebClient(frontend)
        web.signup()
        cookies, csrf = web.cookies(), web.csrf
        web.close()
        counter = itertools.count()

        # Mixed load through the frontend (which loads the backend behind it) and straight
        # to the backend, while the cgroups are sampled every half second.
        def mixed(w: int, s: int) -> tuple[str, str, dict[str, Any]]:
            n = next(counter) % 4
            if n == 0:
                return "POST", f"{frontend}/api/tasks", {
                    "json": {"title": f"load {s}"}, "headers": {"X-CSRF-Token": csrf}}
            if n == 1:
                return "POST", f"{backend}{user.path('chat')}", {
                    "json": {"message": "add a task to water the plants"},
                    "headers": user.headers}
            if n == 2:
                return "GET", f"{frontend}/api/tasks", {}
            return "GET", f"{frontend}/", {}

        peaks: dict[str, dict[str, Any]] = {}
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                for name, row in sample(stack).items():
                    best = peaks.setdefault(name, dict(row))
                    for key in ("usage_bytes", "working_set_bytes", "rss_bytes"):
                        best[key] = max(best.get(key, 0), row.get(key, 0))
                    best["peak_bytes"] = row.get("peak_bytes", 0)
                stop.wait(0.5)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        point = run_point("mixed load", mixed, 64, seconds, 2, cookies=cookies)
        stop.set()
        thread.join()
        say(f"mixed load: {point.rps:.1f} req/s, errors {point.errors}")
        targets = []
        for component, limit in TARGET_MIB.items():
            worst = max((r["usage_bytes"] for r in peaks.values() if r["component"] == component),
                        default=0.0)
            targets.append(target(f"{component} pod memory under load <= {limit} MiB "
                                  "(cgroup usage, highest sample)", worst, limit, "MiB"))
        for name, row in peaks.items():
            say(f"{name}: idle {idle.get(name, {}).get('usage_bytes')} MiB, "
                f"under load {row['usage_bytes']} MiB")
        result = {
            "source": "cgroup v1 memory.usage_in_bytes / memory.stat of each container, read on "
                      "the node (working set = usage - total_inactive_file; peak = "
                      "memory.max_usage_in_bytes since the container started)",
            "idle_mib": idle, "under_load_mib": peaks, "load": point.to_dict(),
            "targets": targets,
        }
        write_result("footprint", result)
        return result
    finally:
        if own:
            stack.down()
