"""Where the machine's CPU went during a measurement: every process's CPU seconds (grouped by
what it is: the app's processes, PostgreSQL, the load generator, the container runtime, the
cluster's own components) and the kernel's softirq/irq/idle/steal time from /proc/stat.
The app's figures alone cannot say why a point is slow on a shared 2-core machine: this
accounts for all of it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psutil

# (what the group is called, words in the process's command line), first match wins.
GROUPS = (
    ("backend (todo_api)", ("todo_api",)),
    ("frontend (todo_web)", ("todo_web",)),
    ("postgres", ("postgres",)),
    ("wrk (load generator)", ("wrk",)),
    ("kube-apiserver", ("kube-apiserver",)),
    ("etcd", ("etcd",)),
    ("kubelet", ("kubelet",)),
    ("kube-proxy", ("kube-proxy",)),
    ("kube-controller-manager / scheduler", ("kube-controller-manager", "kube-scheduler")),
    ("dockerd / containerd (runtime, logs)", ("dockerd", "containerd", "docker-proxy")),
    ("bench (this process)", ("bench",)),
    ("pytest (other work on the machine)", ("pytest",)),
)
KERNEL_FIELDS = ("irq", "softirq", "steal", "iowait", "idle")


def group_of(cmdline: list[str], name: str) -> str:
    text = " ".join(cmdline) or name
    for group, words in GROUPS:
        if any(word in text for word in words):
            return group
    return "other"


@dataclass
class Snapshot:
    at: float
    processes: dict[int, tuple[str, float]]  # pid -> (group, user+system seconds)
    kernel: dict[str, float]  # /proc/stat's machine-wide seconds by field


def snapshot() -> Snapshot:
    processes: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if times is None:
            continue
        processes[proc.info["pid"]] = (group_of(proc.info.get("cmdline") or [], proc.info["name"] or ""),
                                       times.user + times.system)
    cpu = psutil.cpu_times()
    kernel = {field: getattr(cpu, field, 0.0) for field in KERNEL_FIELDS}
    return Snapshot(time.monotonic(), processes, kernel)


def accounted(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """CPU used between two snapshots, in cores (CPU seconds per second), by group, plus the
    kernel's interrupt time and what stayed idle. A process that started in between counts
    from zero; one that ended in between is not seen (short-lived ones are 'unseen')."""
    wall = max(after.at - before.at, 1e-6)
    by_group: dict[str, float] = {}
    for pid, (group, seconds) in after.processes.items():
        start = before.processes.get(pid, (group, 0.0))[1]
        by_group[group] = by_group.get(group, 0.0) + max(seconds - start, 0.0)
    kernel = {field: after.kernel[field] - before.kernel[field] for field in KERNEL_FIELDS}
    cores = psutil.cpu_count() or 1
    busy = cores * wall - kernel["idle"] - kernel["iowait"]
    seen = sum(by_group.values()) + kernel["irq"] + kernel["softirq"] + kernel["steal"]
    groups = {g: round(s / wall, 3) for g, s in sorted(by_group.items(), key=lambda kv: -kv[1]) if s / wall >= 0.005}
    return {
        "wall_s": round(wall, 2),
        "cores": cores,
        "busy_cores": round(busy / wall, 3),
        "idle_cores": round(kernel["idle"] / wall, 3),
        "processes_cores": groups,
        "kernel_cores": {f: round(kernel[f] / wall, 3) for f in ("irq", "softirq", "steal")},
        "unseen_cores": round(max(busy - seen, 0.0) / wall, 3),  # processes that came and went
    }
