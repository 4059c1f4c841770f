"""Real backend/frontend processes on loopback (SQLite, offline agent) for the input drills."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BACKEND_DIR = REPO / "app" / "backend"
FRONTEND_DIR = REPO / "app" / "frontend"
COMMON_DIR = REPO / "app" / "common"  # todo_serving, which both apps import


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalApp:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait(url: str, app: LocalApp, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            raise RuntimeError(f"{url} exited {app.proc.returncode}:\n{app.log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    app.stop()
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s:\n{app.log.read_text()[-3000:]}")


def _env(path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(PYTHONPATH=os.pathsep.join([str(path), str(COMMON_DIR)]),
               PYTHONDONTWRITEBYTECODE="1", HOST="127.0.0.1",
               DRAIN_SECONDS="0", **values)
    return env


def start_backend(tmp: Path, **extra: str) -> LocalApp:
    port = free_port()
    settings = {
        "AUTH_SECRET": "drill-auth-" + secrets.token_hex(16),
        "DATABASE_URL": f"sqlite:///{tmp / 'todo.db'}",
        "LLM_PROVIDER": "offline",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    env = _env(BACKEND_DIR, **settings)
    migrate = subprocess.run([sys.executable, "-m", "todo_api", "migrate"], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
    log = tmp / "backend.log"
    proc = subprocess.Popen([sys.executable, "-m", "todo_api"], cwd=tmp, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    app = LocalApp(f"http://127.0.0.1:{port}", proc, log)
    _wait(f"{app.url}/ready", app)
    return app


def start_frontend(tmp: Path, backend_url: str, **extra: str) -> LocalApp:
    port = free_port()
    settings = {"SESSION_SECRET": "drill-session-" + secrets.token_hex(16), "BACKEND_URL": backend_url,
                "PORT": str(port), **extra}
    env = _env(FRONTEND_DIR, **settings)
    log = tmp / "frontend.log"
    proc = subprocess.Popen([sys.executable, "-m", "todo_web"], cwd=tmp, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    app = LocalApp(f"http://127.0.0.1:{port}", proc, log)
    _wait(f"{app.url}/readyz", app)
    return app


@contextmanager
def postgres_database(postgres_url: str, prefix: str = "drill") -> Iterator[str]:
    """A fresh, empty PostgreSQL database beside TEST_DATABASE_URL's, dropped afterwards.
    Pass its URL as DATABASE_URL to `start_backend` (which migrates it)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pod_memory_limit_mib(component: str) -> int:
    """The chart's memory limit for the component (values.yaml), in MiB."""
    text = (REPO / "helm" / "todo-chatbot" / "values.yaml").read_text()
    section = text.split(f"\n{component}:", 1)[1]
    match = re.search(r"limits:\s*\{[^}]*memory:\s*(\d+)Mi", section)
    assert match, f"no memory limit for {component} in values.yaml"
    return int(match.group(1))


def _status_mib(app: LocalApp, field: str) -> float:
    status = Path(f"/proc/{app.proc.pid}/status").read_text()
    match = re.search(rf"{field}:\s+(\d+) kB", status)
    assert match, f"no {field} in /proc/{app.proc.pid}/status"
    return int(match.group(1)) / 1024


def peak_rss_mib(app: LocalApp) -> float:
    return _status_mib(app, "VmHWM")


def rss_mib(app: LocalApp) -> float:
    return _status_mib(app, "VmRSS")
