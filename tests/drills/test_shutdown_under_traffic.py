"""Drill: SIGTERM under traffic, many times, for both apps (issue 20 item 2).

Each run starts the real server (the backend on PostgreSQL), keeps several clients busy
(every request logged at INFO, so the main thread is often inside the log handler), sends
SIGTERM and checks: readiness answers 503 to every probe sent after the signal, every request
begun before the middle of the drain is answered (no 5xx, no dropped connection), and the process
exits 0 within the drain plus a margin. The old signal handlers logged: a SIGTERM that landed
while the main thread held the log handler's lock (queue.Queue / threading.Event) hung the
process for good (1 in ~20).
Whatever happens, every process started here is killed at the end.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.drills.local_apps import (
    BACKEND_DIR,
    FRONTEND_DIR,
    LocalApp,
    _env,
    free_port,
    postgres_database,
    start_backend,
)
from tests.drills.test_limits_and_abuse import _apps_available

pytestmark = pytest.mark.timeout(600)
RUNS = 12  # per app
AT_ONCE = 3  # runs in parallel (each mostly waits: start, drain)
DRAIN_S = 3.0
EXIT_MARGIN_S = 6  # uvicorn's graceful shutdown of what is in flight, and the interpreter's exit
CLIENTS = 3


@dataclass
class Run:
    """One server process and what its clients saw."""

    name: str
    url: str
    ready_path: str
    page: str
    proc: subprocess.Popen[bytes]
    log: Path
    outcomes: list[tuple[float, float, str]] = field(default_factory=list)  # (began, ended, status/error)
    sigterm_at: float = 0.0
    readiness: list[int] = field(default_factory=list)  # answers to requests sent after SIGTERM
    exit_after: float | None = None
    code: int | None = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def database(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalApp]]:
    """A migrated PostgreSQL database, and one backend on it the frontends talk to."""
    require(_apps_available(), "the apps' dependencies (pip install -r requirements-dev.txt)")
    with postgres_database(postgres_url, "shutdown") as url:
        backend = start_backend(tmp_path_factory.mktemp("shutdown-backend"), DATABASE_URL=url)
        try:
            yield url, backend
        finally:
            backend.stop()


def _spawn(which: str, tmp: Path, backend_url: str, database_url: str) -> Run:
    port = free_port()
    if which == "backend":
        env = _env(BACKEND_DIR, AUTH_SECRET="drill-auth-secret-0123456789abcdef", DATABASE_URL=database_url,
                   LLM_PROVIDER="offline", PORT=str(port), LOG_LEVEL="INFO")
        module, ready, page = "todo_api", "/ready", "/api/meta"
    else:
        env = _env(FRONTEND_DIR, SESSION_SECRET="drill-session-secret-0123456789", BACKEND_URL=backend_url,
                   PORT=str(port), LOG_LEVEL="info")
        module, ready, page = "todo_web", "/readyz", "/login"
    env["DRAIN_SECONDS"] = str(DRAIN_S)  # (_env sets 0)
    log = tmp / f"{which}-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=tmp, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    return Run(f"{which}:{port}", f"http://127.0.0.1:{port}", ready, page, proc, log)


def _wait_ready(run: Run, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise AssertionError(f"{run.name} exited {run.proc.returncode} at start:\n{run.log_tail()}")
        try:
            if httpx.get(f"{run.url}{run.ready_path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{run.name} not ready in {timeout:.0f}s:\n{run.log_tail()}")


def _client(run: Run, stop: threading.Event) -> None:
    with httpx.Client(base_url=run.url, timeout=10) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                outcome = str(client.get(run.page).status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            run.outcomes.append((began, time.monotonic(), outcome))
            if began > run.sigterm_at > 0 and outcome not in ("200",):
                time.sleep(0.05)  # the server is going: don't spin on refused connections


def _watch_readiness(run: Run) -> None:
    """Ask for readiness from SIGTERM until the server stops answering: every answer must be
    503 (the handler ran before the loop could read a request sent after the signal)."""
    with httpx.Client(timeout=2) as client:
        while run.proc.poll() is None and time.monotonic() < run.sigterm_at + DRAIN_S + EXIT_MARGIN_S:
            try:
                run.readiness.append(client.get(f"{run.url}{run.ready_path}").status_code)
            except httpx.HTTPError:
                if run.readiness:
                    return  # no longer listening
            time.sleep(0.05)


def _sigterm_under_traffic(run: Run) -> Run:
    stop = threading.Event()
    clients = [threading.Thread(target=_client, args=(run, stop), daemon=True) for _ in range(CLIENTS)]
    try:
        _wait_ready(run)
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        run.sigterm_at = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        _watch_readiness(run)
        try:
            run.code = run.proc.wait(timeout=max(0.1, run.sigterm_at + DRAIN_S + EXIT_MARGIN_S - time.monotonic()))
            run.exit_after = time.monotonic() - run.sigterm_at
        except subprocess.TimeoutExpired:
            pass  # hung: reported by the caller
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=15)
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    return run


def _problems(run: Run) -> list[str]:
    problems = []
    if run.exit_after is None:
        problems.append(f"{run.name} still running {DRAIN_S + EXIT_MARGIN_S:g}s after SIGTERM (hung)")
    elif run.code != 0:
        problems.append(f"{run.name} exited {run.code}")
    if not run.readiness or set(run.readiness) != {503}:
        problems.append(f"{run.name}: readiness after SIGTERM answered {run.readiness} (want only 503s)")
    # Begun in the first half of the drain: the server has surely read them before it stops
    # (the clients' own clocks run late on a loaded machine: a thread waits for the GIL).
    served_until = run.sigterm_at + DRAIN_S / 2
    failed = [outcome for began, _, outcome in run.outcomes if began < served_until and outcome != "200"]
    if failed:
        problems.append(f"{run.name}: {len(failed)} requests begun during the drain failed: {sorted(set(failed))}")
    if not any(began < served_until and ended > run.sigterm_at for began, ended, _ in run.outcomes):
        problems.append(f"{run.name}: no request was in flight during the drain")
    return [f"{p}\n{run.log_tail()}" for p in problems]


@pytest.mark.parametrize("which", ["frontend", "backend"])
def test_sigterm_under_traffic_drains_and_exits_every_time(which: str, database: tuple[str, LocalApp],
                                                            tmp_path: Path) -> None:
    database_url, backend = database
    runs: list[Run] = []  # every process started, for the finally

    def one(_: int) -> Run:
        run = _spawn(which, tmp_path, backend.url, database_url)
        runs.append(run)
        return _sigterm_under_traffic(run)

    try:
        with ThreadPoolExecutor(AT_ONCE) as pool:
            done = list(pool.map(one, range(RUNS)))
    finally:
        for run in runs:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
    problems = [problem for run in done for problem in _problems(run)]
    exits = [run.exit_after for run in done if run.exit_after is not None]
    print(f"{which}: {len(done)} SIGTERMs under traffic; {len(exits)} exited, slowest "
          f"{max(exits, default=0):.2f}s (drain {DRAIN_S}s); {sum(len(r.readiness) for r in done)} readiness "
          f"answers after SIGTERM, {sum(r.readiness.count(503) for r in done)} x 503; "
          f"{sum(len(r.outcomes) for r in done)} requests")
    assert not problems, "\n\n".join(problems)
