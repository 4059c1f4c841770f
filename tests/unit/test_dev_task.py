"""`inv dev` runs backend and frontend together; the frontend reaches the backend."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ok(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200 in time"
        time.sleep(0.3)


def _start_dev(tmp_path: Path, backend_port: int, frontend_port: int) -> subprocess.Popen:
    env = os.environ | {"TODO_DEPLOY_ROOT": str(tmp_path), "LLM_PROVIDER": "offline",
                        "COLUMNS": "200"}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "dev",
         f"--backend-port={backend_port}", f"--frontend-port={frontend_port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_inv_dev_serves_both_and_a_signal_stops_both(tmp_path: Path, signum: int) -> None:
    backend_port, frontend_port = _free_port(), _free_port()
    proc = _start_dev(tmp_path, backend_port, frontend_port)
    try:
        deadline = time.monotonic() + 60
        page = _wait_ok(f"http://127.0.0.1:{frontend_port}/", deadline)
        assert "password" in page.text.lower()
        # /api/meta is proxied by the frontend to the backend it was pointed at.
        meta = _wait_ok(f"http://127.0.0.1:{frontend_port}/api/meta", deadline).json()
        assert meta["agent"]["provider"] == "offline"
        assert (tmp_path / ".state" / "todo-dev.db").exists()
        children = _children(proc.pid)
        assert len(children) >= 2, children
    finally:
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"stopped both apps ({signal.Signals(signum).name})" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    # readable lines, not the apps' raw JSON records
    assert re.search(r"^backend\s+info\s+GET /api/meta -> 200 \(", output, re.MULTILINE), output
    assert '{"ts"' not in output
    for child in children:  # no orphans
        assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
    for port in (backend_port, frontend_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"


def test_a_port_in_use_is_reported_up_front_by_number(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start_dev(tmp_path, port, _free_port())
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert f"port {port} (backend) is already in use; free it or pass --backend-port" in output
    assert not (tmp_path / ".state" / "todo-dev.db").exists()  # nothing was started


def test_log_records_become_one_readable_line() -> None:
    from todo_deploy.access.logs import readable

    access = ('{"ts": "2026-11-29T12:00:00.000+00:00", "level": "info", "logger": '
              '"todo_api.access", "msg": "request", "method": "GET", "path": "/health", '
              '"status": 200, "duration_ms": 1.5, "request_id": "x"}')
    assert readable(access) == ("info", "GET /health -> 200 (1.5 ms)")
    error = '{"level": "error", "logger": "sqlalchemy.engine", "msg": "boom", "error": "OSError"}'
    assert readable(error) == ("error", "sqlalchemy.engine: boom [OSError]")
    assert readable("INFO:     plain text\n") == ("", "INFO:     plain text")
    assert readable("[1, 2]") == ("", "[1, 2]")
