"""Throughput and latency of the deployed app through its ClusterIP Services (one backend pod).

Routes: the ceiling (GET /started: a FastAPI route that reads one flag and touches nothing
else; /health is answered by the HTTP protocol itself, below the app), list tasks,
create task, chat with the offline agent, and the frontend's signed-in page. Each at
concurrency 1/8/32/64 for DURATION s after a warm-up, driven by Debian's `wrk` (one
thread; its CPU seconds are recorded per point). Memory and CPU of the backend pod are
read from its cgroup around each point, so the figures say what a request costs the
server.

`BENCH_SOURCE_REF=<git ref>` builds and measures that commit's app instead of the working
tree (the "before" figures); `BENCH_PREFIX` / `BENCH_RELEASE` name the scratch namespace and release; `BENCH_ROUTES`
(comma-separated name prefixes) picks routes; `BENCH_RESULT_NAME` names the result file.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from typing import Any

import httpx

from bench import machine
from bench.client import WebClient, signup
from bench.common import (
    REPO,
    cgroup_text,
    container_id,
    container_memory,
    mib,
    say,
    target,
    write_result,
)
from bench.load import WRK_INSTALL, Point, wrk_available, wrk_point, wrk_script
from bench.stack import Stack

CONCURRENCY = (1, 8, 32, 64)
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "10"))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "2"))
LIST_ROUTE = "list tasks"


def ceiling_touches_nothing() -> dict[str, Any]:
    """Confirm from the backend's source that the ceiling's route (/started) reads no
    database, session or engine: only the app's own started flag."""
    path = str(REPO / "app" / "backend")
    if path not in sys.path:
        sys.path.insert(0, path)
    from todo_api.routes import health

    source = inspect.getsource(health.started)
    params = list(inspect.signature(health.started).parameters)
    touches = [word for word in ("session", "engine", "db", "await") if word in source]
    return {"source": source.strip(), "parameters": params, "touches_nothing": not touches}


def app_stack() -> Stack:
    stack = Stack.scratch(os.environ.get("BENCH_PREFIX", "bench-app"), log=say,
                          BACKEND_REPLICAS="1", FRONTEND_REPLICAS="1")
    stack.release = os.environ.get("BENCH_RELEASE", stack.release)
    ref = os.environ.get("BENCH_SOURCE_REF")
    if ref:  # the app (and its Dockerfiles) as of that commit
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "docker", "app"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(stack.root)], input=archive, check=True)
        say(f"building the app as of {ref}")
    return stack


Route = tuple[str, dict[str, str], str | None]  # url, headers, wrk script


def routes(stack: Stack) -> dict[str, Route]:
    backend, frontend = stack.service_url("backend"), stack.service_url("frontend")
    user = signup(backend)  # lists and chats: exactly 10 tasks, all through the run
    creator = signup(backend)  # the create-task point adds thousands of tasks to this one
    for i in range(10):
        httpx.post(f"{backend}{user.path('tasks')}", json={"title": f"seed task {i}"},
                   headers=user.headers, timeout=10).raise_for_status()
    web = WebClient(frontend)
    web.signup()
    cookie = "; ".join(f"{k}={v}" for k, v in web.cookies().items())
    web.close()
    json_type = {"Content-Type": "application/json"}
    return {
        "ceiling: GET /started": (f"{backend}/started", {}, None),
        LIST_ROUTE: (f"{backend}{user.path('tasks')}?limit=50", user.headers, None),
        "create task": (f"{backend}{creator.path('tasks')}", {**creator.headers, **json_type},
                        wrk_script(unique_title=True)),
        "chat (offline agent)": (f"{backend}{user.path('chat')}", {**user.headers, **json_type},
                                 wrk_script("POST", '{"message": "show my pending tasks"}')),
        "frontend page (signed in)": (f"{frontend}/", {"Cookie": cookie}, None),
    }


def _cpu_seconds(pod: dict[str, Any]) -> float | None:
    """CPU seconds the pod's first container has used (cgroup v1 cpuacct or v2 cpu.stat)."""
    cid = container_id(pod)
    if not cid:
        return None
    usage = cgroup_text(cid, "cpuacct", "cpuacct.usage")
    if usage is not None:
        return int(usage) / 1e9
    stat = _cpu_stat(cid)
    return stat["usage_usec"] / 1e6 if "usage_usec" in stat else None


def _cpu_stat(cid: str) -> dict[str, int]:
    text = cgroup_text(cid, "cpu", "cpu.stat") or ""
    return {key: int(value) for key, value in (line.split() for line in text.splitlines() if line.strip())}


def _throttling(pod: dict[str, Any]) -> dict[str, float] | None:
    """CFS quota counters of the pod's first container (cgroup v1 cpu/cpu.stat or v2
    cpu.stat): periods, periods throttled, time throttled (ms). A container that uses its
    whole CPU limit within a 100 ms period waits out the rest of it: a latency tail."""
    cid = container_id(pod)
    stat = _cpu_stat(cid) if cid else {}
    if "nr_throttled" not in stat:
        return None
    throttled_ms = (stat["throttled_time"] / 1e6 if "throttled_time" in stat
                    else stat.get("throttled_usec", 0) / 1e3)
    return {"periods": stat.get("nr_periods", 0), "throttled": stat["nr_throttled"],
            "throttled_ms": throttled_ms}


def _throttling_delta(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    return {k: round(after[k] - before[k], 1) for k in after}


def memory_now(stack: Stack) -> dict[str, float]:
    out = {}
    for component in ("backend", "frontend"):
        pods = stack.pods(component)
        if pods:
            out[component] = mib(container_memory(pods[0]).get("usage_bytes", 0))
    return out


def run(stack: Stack | None = None, concurrency: tuple[int, ...] = CONCURRENCY) -> dict[str, Any]:
    if not wrk_available():
        raise RuntimeError(f"wrk is not installed: {WRK_INSTALL}")
    own = stack is None
    stack = stack or app_stack().up()
    try:
        replicas = len(stack.pods("backend"))
        table = routes(stack)
        only = [r.strip() for r in os.environ.get("BENCH_ROUTES", "").split(",") if r.strip()]
        if only:  # e.g. BENCH_ROUTES=ceiling,list: just the throughput target's two routes
            table = {k: v for k, v in table.items() if any(k.startswith(o) for o in only)}
        points: list[dict[str, Any]] = []
        for route, (url, headers, script) in table.items():
            for c in concurrency:
                pods = stack.pods("backend")
                db_pods = stack.pods("database")
                cpu0 = _cpu_seconds(pods[0]) if pods else None
                thr0 = [_throttling(p[0]) if p else None for p in (pods, db_pods)]
                machine0 = machine.snapshot()
                point: Point = wrk_point(route, url, c, DURATION_S, WARMUP_S, headers=headers, script=script)
                used = machine.accounted(machine0, machine.snapshot())
                cpu1 = _cpu_seconds(pods[0]) if pods else None
                thr1 = [_throttling(p[0]) if p else None for p in (pods, db_pods)]
                row = point.to_dict()
                row["backend_throttling"] = _throttling_delta(thr0[0], thr1[0])
                row["database_throttling"] = _throttling_delta(thr0[1], thr1[1])
                row["memory_mib_after"] = memory_now(stack)
                row["machine"] = used  # where both cores went during the point (warm-up included)
                if cpu0 is not None and cpu1 is not None and point.requests:
                    # includes the warm-up's requests' CPU: an upper bound per request
                    row["backend_cpu_s"] = round(cpu1 - cpu0, 2)
                points.append(row)
                say(f"{route:28s} c={c:<3d} {point.rps:8.1f} req/s  p50 {point.p50_ms:7.2f} ms  "
                    f"p99 {point.p99_ms:7.2f} ms  errors {point.errors}  "
                    f"wrk cpu {point.client_cpu_s:.1f}s/{point.duration_s:.0f}s  "
                    f"backend cpu {row.get('backend_cpu_s', '?')}s  "
                    f"throttled backend {row['backend_throttling']} database {row['database_throttling']}")
                top = ", ".join(f"{g} {v}" for g, v in list(used["processes_cores"].items())[:6])
                say(f"{'':28s} machine: busy {used['busy_cores']}/{used['cores']} cores: {top}; "
                    f"softirq {used['kernel_cores']['softirq']}, unseen {used['unseen_cores']}")
        ceiling = {p["concurrency"]: p["rps"] for p in points if p["route"].startswith("ceiling")}
        for p in points:
            base = ceiling.get(p["concurrency"]) or 0
            p["fraction_of_ceiling"] = round(p["rps"] / base, 3) if base else None
        best_ceiling = max(ceiling.values())
        best_list = max(p["rps"] for p in points if p["route"] == LIST_ROUTE)
        list_c8 = next(p for p in points if p["route"] == LIST_ROUTE and p["concurrency"] == 8)
        targets = [
            target("list tasks >= 50% of the ceiling's req/s (best of each)",
                   best_list / best_ceiling * 100, 50, "%", at_most=False),
            target("list tasks p99 at concurrency 8 <= 25 ms", list_c8["p99_ms"], 25, "ms"),
        ]
        result = {
            "backend_replicas": replicas, "duration_s": DURATION_S, "warmup_s": WARMUP_S,
            "concurrency": list(concurrency), "ceiling_route": ceiling_touches_nothing(),
            "source_ref": os.environ.get("BENCH_SOURCE_REF") or "working tree",
            "load_generator": "wrk (Debian), one thread, closed loop, on the same 2 cores "
                              "(client_cpu_s = its CPU seconds during the point)",
            "path": "host -> ClusterIP (kube-proxy iptables) -> pod",
            "points": points, "targets": targets,
        }
        name = os.environ.get("BENCH_RESULT_NAME", "app")
        write_result(name, result)
        for t in targets:
            say(f"target: {t['target']}: {t['value']} {t['unit']} -> {'met' if t['met'] else 'MISSED'}")
        return result
    finally:
        if own:
            stack.down()


if __name__ == "__main__":
    run()
