"""Issue 22 item 6: `inv logs` leaves the health-probe lines out unless --probes."""

from __future__ import annotations

import inspect
import json
from typing import Any

from invoke import Context

from tests.unit.test_logs import FakeKube, pod
from todo_deploy.access import logs
from todo_deploy.config import Settings


def record(path: str, status: int = 200, method: str = "GET") -> str:
    return json.dumps({"level": "info", "msg": "request", "method": method, "path": path,
                       "status": status, "duration_ms": 0.4})


def stamped(lines: list[str]) -> str:
    return "".join(f"2026-11-29T12:{i // 60:02d}:{i % 60:02d}.0Z {line}\n" for i, line in enumerate(lines))


def test_probe_lines_are_recognised_in_json_and_plain_access_logs() -> None:
    for path in ("/ready", "/health", "/healthz", "/readyz", "/started", "/ready?verbose=1"):
        assert logs.is_probe(record(path)), path
    assert logs.is_probe('10.0.0.1:5000 - "GET /healthz HTTP/1.1" 200 OK')
    assert not logs.is_probe(record("/ready", status=503))  # a failing probe is news
    assert not logs.is_probe(record("/api/tasks"))
    assert not logs.is_probe(record("/ready", method="POST"))
    assert not logs.is_probe('"GET /api/tasks HTTP/1.1" 200')
    assert not logs.is_probe("startup complete")


def busy_kube() -> FakeKube:
    # 99 probe lines and 1 of the app's own: what an idle backend logs.
    lines = [record("/ready")] * 50 + [record("/api/tasks", 201)] + [record("/ready")] * 49
    return FakeKube([pod("be-1", "backend")], {"be-1": stamped(lines)}, [])


def test_snapshot_leaves_probe_lines_out_by_default() -> None:
    """Before: 99 of the 100 lines were `GET /ready -> 200`."""
    lines = logs.snapshot(busy_kube(), Settings(), tail=100)
    assert [logs.readable(line.text)[1] for line in lines] == ["GET /api/tasks -> 201 (0.4 ms)"]


def test_snapshot_keeps_probe_lines_when_asked() -> None:
    kube = busy_kube()
    lines = logs.snapshot(kube, Settings(), tail=100, probes=True)
    assert len(lines) == 100 and kube.queries[0]["tailLines"] == "100"


def test_inv_logs_has_a_probes_flag_that_reaches_the_snapshot(monkeypatch: Any) -> None:
    from todo_deploy.cli import logs as cli_logs

    seen: list[bool] = []
    monkeypatch.setattr(logs, "snapshot", lambda kube, settings, only, tail, probes: seen.append(probes) or [])
    monkeypatch.setattr("todo_deploy.kube.Kube", lambda context: object())
    cli_logs.logs(Context())
    cli_logs.logs(Context(), probes=True)
    assert seen == [False, True]
    assert "probes" in inspect.signature(cli_logs.logs.body).parameters
