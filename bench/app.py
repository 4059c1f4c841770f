"""Throughput and latency of the deployed app through its ClusterIP Services (one backend pod).

Routes: the ceiling (GET /health: a FastAPI route that touches nothing), list tasks,
create task, chat with the offline agent, and the frontend's signed-in page. Each
at concurrency 1/8/32/64 for DURATION s after a warm-up. Memory of the pods is
sampled after each point (see bench/footprint.py for the idle/under-load figures).
"""

from __future__ import annotations

import inspect
import itertools
import os
import sys
from collections.abc import Callable
from typing import Any

from bench.client import WebClient, signup
from bench.common import REPO, container_memory, mib, say, target, write_result
from bench.load import Point, RequestFactory, run_point
from bench.stack import Stack

CONCURRENCY = (1, 8, 32, 64)
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "2"))


def health_touches_nothing() -> dict[str, Any]:
    """Confirm from the backend's source that /health takes no dependency and no state."""
    path = str(REPO / "app" / "backend")
    if path not in sys.path:
        sys.path.insert(0, path)
    from todo_api.routes import health

    source = inspect.getsource(health.health)
    params = list(inspect.signature(health.health).parameters)
    return {"source": source.strip(), "parameters": params,
            "touches_nothing": not params and "session" not in source and "engine" not in source}


def app_stack() -> Stack:
    return Stack.scratch("bench-app", log=say, BACKEND_REPLICAS="1", FRONTEND_REPLICAS="1")


def routes(stack: Stack) -> dict[str, tuple[RequestFactory, dict[str, Any], Callable[[int], bool]]]:
    backend, frontend = stack.service_url("backend"), stack.service_url("frontend")
    user = signup(backend)  # lists and chats: exactly 10 tasks, all through the run
    creator = signup(backend)  # the create-task point adds thousands of tasks to this one
    for i in range(10):
        import httpx

        httpx.post(f"{backend}{user.path('tasks')}", json={"title": f"seed task {i}"},
                   headers=user.headers, timeout=10).raise_for_status()
    web = WebClient(frontend)
    web.signup()
    cookies = web.cookies()
    web.close()
    counter = itertools.count()
    list_url = f"{backend}{user.path('tasks')}"
    create_url = f"{backend}{creator.path('tasks')}"
    chat_url = f"{backend}{user.path('chat')}"
    bearer = {"headers": user.headers}

    def fixed(method: str, url: str, **kwargs: Any) -> RequestFactory:
        return lambda w, s: (method, url, kwargs)

    def create(w: int, s: int) -> tuple[str, str, dict[str, Any]]:
        return "POST", create_url, {"json": {"title": f"bench task {next(counter)}"},
                                    "headers": creator.headers}

    def chat(w: int, s: int) -> tuple[str, str, dict[str, Any]]:
        return "POST", chat_url, {"json": {"message": "show my pending tasks"}}

    def ok2xx(status: int) -> bool:
        return 200 <= status < 300

    return {
        "ceiling: GET /health": (fixed("GET", f"{backend}/health"), {}, ok2xx),
        "list tasks": (fixed("GET", list_url, params={"limit": 50}), bearer, ok2xx),
        "create task": (create, {}, ok2xx),
        "chat (offline agent)": (chat, bearer, ok2xx),
        "frontend page (signed in)": (fixed("GET", f"{frontend}/"), {"cookies": cookies}, ok2xx),
    }


def memory_now(stack: Stack) -> dict[str, float]:
    out = {}
    for component in ("backend", "frontend"):
        pods = stack.pods(component)
        if pods:
            out[component] = mib(container_memory(pods[0]).get("usage_bytes", 0))
    return out


def run(stack: Stack | None = None, concurrency: tuple[int, ...] = CONCURRENCY) -> dict[str, Any]:
    own = stack is None
    stack = stack or app_stack().up()
    try:
        replicas = len(stack.pods("backend"))
        table = routes(stack)
        points: list[dict[str, Any]] = []
        for route, (factory, extra, ok) in table.items():
            for c in concurrency:
                point: Point = run_point(route, factory, c, DURATION_S, WARMUP_S, ok=ok,
                                         headers=extra.get("headers"), cookies=extra.get("cookies"))
                row = point.to_dict()
                row["memory_mib_after"] = memory_now(stack)
                points.append(row)
                say(f"{route:28s} c={c:<3d} {point.rps:8.1f} req/s  p50 {point.p50_ms:7.1f} ms  "
                    f"p99 {point.p99_ms:7.1f} ms  errors {point.errors}  "
                    f"client cpu {point.client_cpu_s:.1f}s/{point.duration_s:.0f}s")
        ceiling = {p["concurrency"]: p["rps"] for p in points if p["route"].startswith("ceiling")}
        for p in points:
            base = ceiling.get(p["concurrency"]) or 0
            p["fraction_of_ceiling"] = round(p["rps"] / base, 3) if base else None
        best_ceiling = max(ceiling.values())
        best_list = max(p["rps"] for p in points if p["route"] == "list tasks")
        list_c8 = next(p for p in points if p["route"] == "list tasks" and p["concurrency"] == 8)
        targets = [
            target("list tasks >= 50% of the ceiling's req/s (best of each)",
                   best_list / best_ceiling * 100, 50, "%", at_most=False),
            target("list tasks p99 at concurrency 8 <= 25 ms", list_c8["p99_ms"], 25, "ms"),
        ]
        result = {
            "backend_replicas": replicas, "duration_s": DURATION_S, "warmup_s": WARMUP_S,
            "concurrency": list(concurrency), "health_route": health_touches_nothing(),
            "load_generator": "python asyncio + httpx, closed loop, on the same 2 cores "
                              "(client_cpu_s = its CPU seconds during the point)",
            "path": "host -> ClusterIP (kube-proxy iptables) -> pod",
            "points": points, "targets": targets,
        }
        write_result("app", result)
        return result
    finally:
        if own:
            stack.down()
