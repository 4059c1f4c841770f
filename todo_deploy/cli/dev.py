"""`inv dev`: backend and frontend on this machine, no Docker or cluster needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task


def dev_environment(secrets: dict[str, str], data_dir: Path, ports: tuple[int, int]) -> dict:
    """Env for each process: SQLite file, offline agent unless a key is set."""
    backend_port, frontend_port = ports
    base = {k: v for k, v in os.environ.items() if k not in ("PORT", "DATABASE_URL")}
    backend = base | {
        "PORT": str(backend_port),
        "DATABASE_URL": f"sqlite:///{data_dir / 'todo-dev.db'}",
        "AUTH_SECRET": secrets["AUTH_SECRET"],
    }
    frontend = base | {
        "PORT": str(frontend_port),
        "BACKEND_URL": f"http://127.0.0.1:{backend_port}",
        "SESSION_SECRET": secrets["SESSION_SECRET"],
    }
    return {"backend": backend, "frontend": frontend}


@task(
    help={
        "backend-port": "Port of the backend (default 8000).",
        "frontend-port": "Port of the frontend (default 3000).",
    }
)
def dev(c, backend_port=8000, frontend_port=3000):  # type: ignore[no-untyped-def]
    """Run backend (SQLite, offline agent) and frontend locally; Ctrl-C stops both."""
    from todo_deploy.console import say

    loaded = load_or_exit()
    settings = loaded.settings
    data_dir = loaded.state_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    envs = dev_environment(
        {
            "AUTH_SECRET": settings.auth_secret.get_secret_value(),
            "SESSION_SECRET": settings.session_secret.get_secret_value(),
        },
        data_dir,
        (int(backend_port), int(frontend_port)),
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "todo_api", "migrate"], env=envs["backend"], check=False
    )
    if migrate.returncode != 0:
        raise Exit("backend migrations failed (see above)", code=1)
    procs = [
        subprocess.Popen([sys.executable, "-m", "todo_api"], env=envs["backend"]),
        subprocess.Popen([sys.executable, "-m", "todo_web"], env=envs["frontend"]),
    ]
    say(f"backend  http://127.0.0.1:{backend_port}  (SQLite in {data_dir}/todo-dev.db)")
    say(f"frontend http://127.0.0.1:{frontend_port}  <- open this; Ctrl-C stops both")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    codes = [p.returncode for p in procs]
    if any(code not in (0, -signal.SIGTERM, None) for code in codes):
        raise Exit(f"a process exited with {codes}", code=1)
