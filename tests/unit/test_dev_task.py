"""`inv dev` runs backend and frontend together; the frontend reaches the backend."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

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


def test_inv_dev_serves_both_and_stops_both(tmp_path: Path) -> None:
    backend_port, frontend_port = _free_port(), _free_port()
    env = os.environ | {"TODO_DEPLOY_ROOT": str(tmp_path), "LLM_PROVIDER": "offline"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "dev",
         f"--backend-port={backend_port}", f"--frontend-port={frontend_port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        page = _wait_ok(f"http://127.0.0.1:{frontend_port}/", deadline)
        assert "password" in page.text.lower()
        # /api/meta is proxied by the frontend to the backend it was pointed at.
        meta = _wait_ok(f"http://127.0.0.1:{frontend_port}/api/meta", deadline).json()
        assert meta["agent"]["provider"] == "offline"
        assert (tmp_path / ".state" / "todo-dev.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    for port in (backend_port, frontend_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"
