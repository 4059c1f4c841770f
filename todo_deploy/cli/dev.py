"""`inv dev`: backend and frontend on this machine, no Docker or cluster needed.

Like a dev server: both ports are checked before anything starts, the apps'
JSON log records become one readable line each (time, app, level, message,
request), and Ctrl-C or SIGTERM stops both apps cleanly. The apps run in their
own process group (the terminal's Ctrl-C reaches only us, and we stop them in
order) and, on Linux, die with us even if we are killed. On Windows the same holds
through `creationflags` (a new process group), never `preexec_fn`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task
from todo_deploy.components import BACKEND, BUILT
from todo_deploy.tools import processes

COLOURS = {"backend": "cyan", "frontend": "magenta", "migrate": "yellow"}
LEVEL_STYLE = {"warning": "yellow", "error": "bold red", "critical": "bold red"}


def dev_environment(secrets: dict[str, str], data_dir: Path, ports: tuple[int, int]) -> dict:
    """Env for each process: SQLite file, offline agent unless a key is set."""
    backend_port, frontend_port = ports
    base = {k: v for k, v in os.environ.items() if k not in ("PORT", "DATABASE_URL")}
    backend = base | {
        "PORT": str(backend_port),
        "DATABASE_URL": f"sqlite:///{data_dir / 'todo-dev.db'}",
        "AUTH_SECRET": secrets["AUTH_SECRET"],
        "PROXY_SECRET": secrets["PROXY_SECRET"],
    }
    frontend = base | {
        "PORT": str(frontend_port),
        "BACKEND_URL": f"http://127.0.0.1:{backend_port}",
        "SESSION_SECRET": secrets["SESSION_SECRET"],
        "PROXY_SECRET": secrets["PROXY_SECRET"],
    }
    return {"backend": backend, "frontend": frontend}


def ports_in_use(ports: dict[str, int]) -> list[str]:
    """One line per port another program holds (checked the way the apps bind: all addresses)."""
    busy = []
    for what, port in ports.items():
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                flag = f"--{what}-port"
                busy.append(f"port {port} ({what}) is already in use; free it or pass {flag}")
    return busy


def _printer(name: str) -> Callable[[str], None]:
    from rich.markup import escape

    from todo_deploy.access.logs import readable
    from todo_deploy.console import console

    def show(line: str) -> None:
        level, text = readable(line)
        if not text.strip():
            return
        style = LEVEL_STYLE.get(level, "")
        body = f"[{style}]{escape(text)}[/]" if style else escape(text)
        tag = f"[{COLOURS.get(name, 'white')}]{name:<8}[/]"
        console().print(f"{tag} {level or '':<7} {body}", soft_wrap=True, highlight=False)

    return show


def _pump(stream: IO[str], show: Callable[[str], None]) -> None:
    for line in stream:
        show(line)


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when `inv dev` dies, even by SIGKILL (no orphans)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def child_options(platform: str | None = None) -> dict[str, Any]:
    """Popen options for an app: its own process group everywhere; on Linux it also dies
    with us (`preexec_fn` exists on POSIX only, and Windows' subprocess rejects it)."""
    platform = platform or sys.platform
    options = processes.own_group(platform)
    if platform.startswith("linux"):
        options["preexec_fn"] = _die_with_parent
    return options


def spawn(name: str, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, threading.Thread]:
    """Start an app; its output is shown line by line by the reader thread returned with it."""
    process = subprocess.Popen(  # preexec_fn (Linux only) is safe: no threads yet
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1, **child_options(),
    )
    assert process.stdout is not None
    reader = threading.Thread(target=_pump, args=(process.stdout, _printer(name)), daemon=True)
    reader.start()
    return process, reader


class _Stop(Exception):
    """SIGTERM or Ctrl-C: stop both apps."""


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


@task(
    help={
        "backend-port": "Port of the backend (default 8000).",
        "frontend-port": "Port of the frontend (default 3000).",
    }
)
def dev(c: Context, backend_port: int = 8000, frontend_port: int = 3000) -> None:
    """Run backend (SQLite, offline agent) and frontend locally; Ctrl-C stops both."""
    from todo_deploy.console import say

    loaded = load_or_exit()
    settings = loaded.settings
    ports = {"backend": int(backend_port), "frontend": int(frontend_port)}
    busy = ports_in_use(ports)
    if busy:
        raise Exit("\n".join(busy), code=1)
    data_dir = loaded.state_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    envs = dev_environment(
        {
            "AUTH_SECRET": settings.auth_secret.get_secret_value(),
            "SESSION_SECRET": settings.session_secret.get_secret_value(),
            "PROXY_SECRET": settings.proxy_secret.get_secret_value(),
        },
        data_dir,
        (ports["backend"], ports["frontend"]),
    )
    _migrate(envs["backend"])
    running, stopped_by = _run_apps(envs, ports, data_dir)
    if stopped_by:
        say(f"stopped both apps ({stopped_by})")
        return
    died = [f"{name} exited with code {p.returncode}" for name, p, _ in running
            if p.returncode not in (0, -signal.SIGTERM)]
    raise Exit("; ".join(died) or "an app stopped", code=1)


def _migrate(env: dict[str, str]) -> None:
    """Run the backend's migrations, showing their output; Exit when they fail."""
    migrate = subprocess.run(
        [sys.executable, "-m", BACKEND.module, "migrate"], env=env, check=False,
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    show_migrate = _printer("migrate")
    for line in (migrate.stdout + migrate.stderr).splitlines():
        show_migrate(line)
    if migrate.returncode != 0:
        raise Exit("backend migrations failed (see above)", code=1)


def _run_apps(envs: dict[str, dict[str, str]], ports: dict[str, int],
              data_dir: Path) -> tuple[list[tuple[str, subprocess.Popen, threading.Thread]], str]:
    """Run both apps until one exits or a stop signal comes, then stop both: the apps and
    reader threads, and what stopped them ('' when an app exited by itself)."""
    from todo_deploy.console import say

    stops = processes.stop_signals()  # SIGHUP where it exists, SIGBREAK on Windows
    previous = {s: signal.signal(s, _on_signal) for s in stops}
    running: list[tuple[str, subprocess.Popen, threading.Thread]] = []
    stopped_by = ""
    try:
        for part in BUILT.values():
            argv = [sys.executable, "-m", part.module]
            running.append((part.name, *spawn(part.name, argv, envs[part.name])))
        say(f"backend  http://127.0.0.1:{ports['backend']}  (SQLite in {data_dir}/todo-dev.db)")
        say(f"frontend http://127.0.0.1:{ports['frontend']}  <- open this; Ctrl-C stops both")
        while all(p.poll() is None for _, p, _ in running):
            time.sleep(0.5)  # a signal interrupts it: _on_signal raises _Stop
    except _Stop as stop:
        stopped_by = str(stop)
    finally:
        for signum in stops:
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        _stop_all(running)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return running, stopped_by


def _stop_all(running: list[tuple[str, subprocess.Popen, threading.Thread]]) -> None:
    """Ask each app still running to stop, the frontend first; kill one that takes over 15 s."""
    for _, process, _ in reversed(running):  # the frontend first, then its backend
        if process.poll() is None:
            processes.ask_to_stop(process)
    for _, process, reader in running:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=2)
