"""bench/machine.py: where the machine's CPU went, from two snapshots."""

from __future__ import annotations

from bench.machine import KERNEL_FIELDS, Snapshot, accounted, group_of


def test_processes_are_grouped_by_what_they_are() -> None:
    assert group_of(["/opt/venv/bin/python", "-m", "todo_api"], "python") == "backend (todo_api)"
    assert group_of(["postgres: todo todo 10.0.0.5(4242) idle"], "postgres") == "postgres"
    assert group_of(["wrk", "-t1", "-c8", "http://x"], "wrk") == "wrk (load generator)"
    assert group_of([], "kube-proxy") == "kube-proxy"
    assert group_of(["/usr/bin/something-else"], "x") == "other"


def test_cpu_is_accounted_per_group_in_cores_with_new_processes_from_zero(monkeypatch) -> None:
    monkeypatch.setattr("bench.machine.psutil.cpu_count", lambda: 2)
    zero = dict.fromkeys(KERNEL_FIELDS, 0.0)
    before = Snapshot(100.0, {1: ("postgres", 5.0), 2: ("backend (todo_api)", 1.0)}, zero)
    after = Snapshot(110.0, {1: ("postgres", 9.0), 2: ("backend (todo_api)", 7.0), 3: ("wrk (load generator)", 1.0)},
                     {**zero, "softirq": 1.0, "idle": 5.0})  # fmt: skip
    used = accounted(before, after)
    assert used["processes_cores"] == {"backend (todo_api)": 0.6, "postgres": 0.4, "wrk (load generator)": 0.1}
    assert used["busy_cores"] == 1.5  # 20 CPU-s of wall, 5 idle
    assert used["idle_cores"] == 0.5
    assert used["kernel_cores"]["softirq"] == 0.1
    assert used["unseen_cores"] == 0.3  # 15 busy - (11 by processes + 1 softirq)
