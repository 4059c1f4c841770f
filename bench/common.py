"""Shared plumbing: result files, machine facts, cgroup memory of pods, timing helpers."""

from __future__ import annotations

import glob
import json
import os
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PLOTS_DIR = BENCH_DIR / "plots"
REPO = BENCH_DIR.parent


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_at_start": [round(load1, 2), round(load5, 2)],
    }
    try:
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["mem_total_mib"] = int(mem[1]) // 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True, timeout=10,
                                            check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    say(f"wrote {path.relative_to(REPO)}")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def target(name: str, value: float, limit: float, unit: str, *, at_most: bool = True) -> dict[str, Any]:
    met = value <= limit if at_most else value >= limit
    return {"target": name, "value": round(value, 3), "limit": limit, "unit": unit,
            "comparison": "<=" if at_most else ">=", "met": bool(met)}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "stdev": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
    }


def wait_quiet(max_load: float = 1.5, max_wait: float = 120) -> float:
    """Wait (bounded) until the 1-minute load average is low; returns the load seen."""
    deadline = time.monotonic() + max_wait
    load = os.getloadavg()[0]
    while load > max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return round(load, 2)


# ---- container memory (cgroup v1 or v2), read on the node = this host -------------------


def _cgroup_dir(container_id: str) -> str | None:
    for pattern in (f"/sys/fs/cgroup/memory/**/{container_id}",
                    f"/sys/fs/cgroup/**/*{container_id}*"):
        for match in glob.glob(pattern, recursive=True):
            if os.path.isdir(match):
                return match
    return None


def container_id(pod: dict[str, Any], container: str | None = None) -> str:
    """The runtime's ID of the pod's (first / named) container, '' before it has one."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    status = next((s for s in statuses if container in (None, s["name"])), None)
    return str(status.get("containerID") or "").split("://", 1)[-1] if status else ""


def cgroup_text(cid: str, v1_controller: str, name: str) -> str | None:
    """A cgroup file of a container on this host (v1: under its controller; v2: unified)."""
    for pattern in (f"/sys/fs/cgroup/{v1_controller}/**/{cid}/{name}",
                    f"/sys/fs/cgroup/**/*{cid}*/{name}"):
        for match in glob.glob(pattern, recursive=True):
            try:
                return Path(match).read_text()
            except OSError:
                continue
    return None


def container_memory(pod: dict[str, Any], container: str | None = None) -> dict[str, int]:
    """Bytes in use by the pod's (first / named) container: usage, working set, peak.

    Read from the container's cgroup on the node (this host shares the node's kernel);
    falls back to `kubectl exec cat` of the same files inside the container.
    """
    statuses = pod.get("status", {}).get("containerStatuses") or []
    status = next((s for s in statuses if container in (None, s["name"])), None)
    if not status or not status.get("containerID"):
        return {}
    cid = status["containerID"].split("://", 1)[-1]
    directory = _cgroup_dir(cid)
    files: dict[str, str] = {}
    if directory:
        for name in ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.stat",
                     "memory.current", "memory.peak"):
            try:
                files[name] = Path(directory, name).read_text()
            except OSError:
                pass
    else:
        script = ("cd /sys/fs/cgroup; for f in memory/memory.usage_in_bytes "
                  "memory/memory.max_usage_in_bytes memory/memory.stat memory.current memory.peak "
                  "memory.stat; do [ -f $f ] && echo \"== $(basename $f)\" && cat $f; done")
        out = subprocess.run(["kubectl", "-n", pod["metadata"]["namespace"], "exec",
                              pod["metadata"]["name"], "-c", status["name"], "--", "sh", "-c",
                              script], capture_output=True, text=True, timeout=30,
                             check=False).stdout
        current = None
        for line in out.splitlines():
            if line.startswith("== "):
                current = line[3:]
                files[current] = ""
            elif current:
                files[current] += line + "\n"
    stat = {}
    for line in files.get("memory.stat", "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[key] = int(value)
    usage = int((files.get("memory.usage_in_bytes") or files.get("memory.current") or "0").strip())
    peak = int((files.get("memory.max_usage_in_bytes") or files.get("memory.peak") or "0").strip() or 0)
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    return {"usage_bytes": usage, "working_set_bytes": max(0, usage - inactive),
            "peak_bytes": peak, "rss_bytes": stat.get("total_rss", stat.get("anon", 0))}


def mib(value: float) -> float:
    return round(value / 1024 / 1024, 1)
