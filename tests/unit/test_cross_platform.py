"""Windows and macOS: the paths those users reach make no POSIX-only call (issue 22, item 10).

The platform is simulated (sys.platform, a signal module without SIGHUP, an
`os.kill` that must not be called); the processes are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from todo_deploy.access import app_url
from todo_deploy.cli import dev
from todo_deploy.config import load_settings
from todo_deploy.tools import processes
from todo_deploy.tools.commands import Runner

# Its command line names the port-forward's module, as the real background process's does.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", app_url.FORWARD_MODULE]


@pytest.fixture
def no_os_kill(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """`os.kill(pid, 0)` terminates the process on Windows: the workflow's code may not call
    it (psutil, which does the right thing per platform, keeps its own `os`)."""
    calls: list[tuple[int, int]] = []
    windows_os = SimpleNamespace(environ=os.environ, kill=lambda pid, sig: calls.append((pid, sig)))
    monkeypatch.setattr(app_url, "os", windows_os)
    return calls


@pytest.fixture
def sleeper() -> Any:
    process = subprocess.Popen(SLEEPER)
    yield process
    process.kill()
    process.wait()


def test_liveness_never_calls_os_kill(no_os_kill: list, sleeper: subprocess.Popen) -> None:
    assert app_url.process_alive(sleeper.pid) is True
    sleeper.kill()
    sleeper.wait()
    assert app_url.process_alive(sleeper.pid) is False
    assert app_url.process_alive(0) is False
    assert no_os_kill == []  # before: os.kill(pid, 0) on every check


def test_an_exited_but_unreaped_child_is_not_alive(sleeper: subprocess.Popen) -> None:
    sleeper.kill()
    # Not waited for: a zombie on POSIX, which os.kill(pid, 0) reported alive.
    import time

    deadline = time.monotonic() + 5
    while processes.alive(sleeper.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes.alive(sleeper.pid) is False


def test_stopping_the_port_forward_terminates_it_without_os_kill(
    tmp_path: Path, no_os_kill: list, sleeper: subprocess.Popen
) -> None:
    kept = app_url.AppUrl("http://127.0.0.1:8080", app_url.PORT_FORWARD, "", "ctx/ns/svc",
                          sleeper.pid)
    app_url.save(tmp_path, kept)
    assert app_url.stop(tmp_path) == kept
    assert sleeper.wait(timeout=5) is not None
    assert no_os_kill == []
    assert app_url.load(tmp_path) is None


@pytest.mark.parametrize("platform", ["win32", "darwin", "linux"])
def test_inv_dev_passes_preexec_fn_only_on_linux(
    monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    seen: dict[str, Any] = {}

    class FakePopen:
        def __init__(self, argv: list[str], **kwargs: Any) -> None:
            seen.update(kwargs)
            self.stdout = iter(())

    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(dev.subprocess, "Popen", FakePopen)
    _, reader = dev.spawn("backend", ["app"], {})
    reader.join(timeout=2)
    if platform == "win32":
        # Windows' subprocess raises ValueError for preexec_fn and has no sessions.
        assert "preexec_fn" not in seen and "start_new_session" not in seen
        assert seen["creationflags"] & processes.CREATE_NEW_PROCESS_GROUP
    else:
        assert seen["start_new_session"] is True and "creationflags" not in seen
        assert ("preexec_fn" in seen) is (platform == "linux")


def test_the_background_port_forward_detaches_per_platform() -> None:
    windows = processes.detached("win32")
    assert "start_new_session" not in windows
    assert windows["creationflags"] & processes.DETACHED_PROCESS
    assert windows["creationflags"] & processes.CREATE_NEW_PROCESS_GROUP
    assert processes.detached("darwin") == {"start_new_session": True}


def test_the_port_forward_process_starts_where_sighup_does_not_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: `signal.SIGHUP` raised AttributeError on Windows before forwarding anything."""
    monkeypatch.delattr(signal, "SIGHUP", raising=False)
    registered: list[int] = []

    def register(signum: int, handler: Any) -> None:
        registered.append(signum)
        handler(signum, None)  # as if it arrived at once: _serve then stops

    class FakeForwarder:
        errors: tuple[str, ...] = ()

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        def start(self) -> str:
            return "http://127.0.0.1:1"
        def close(self) -> None: ...

    class FakeKube:
        api = None

        def __init__(self, context: str) -> None: ...

    monkeypatch.setenv("TODO_DEPLOY_ROOT", str(tmp_path))
    monkeypatch.setattr(app_url, "signal", SimpleNamespace(signal=register))  # not the global
    monkeypatch.setattr(app_url, "PortForwarder", FakeForwarder)
    monkeypatch.setattr(app_url, "Kube", FakeKube)
    assert app_url.serve_forwarding(0) == 0
    assert signal.SIGTERM in registered and signal.SIGINT in registered


def test_a_windows_executable_is_run_by_the_path_shutil_which_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`minikube` is `minikube.exe` (or a `.cmd` shim) on Windows: run what PATH lookup found."""
    found = r"C:\Program Files\Kubernetes\Minikube\minikube.exe"
    ran: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr("shutil.which", lambda name: found if name == "minikube" else None)
    monkeypatch.setattr(subprocess, "run", fake_run)
    logged: list[str] = []
    result = Runner(log=logged.append).run(["minikube", "status", "-p", "todo"])
    assert ran == [[found, "status", "-p", "todo"]]
    assert result.argv == ("minikube", "status", "-p", "todo")  # logged as issued
    assert logged == ["$ minikube status -p todo"]


def test_env_file_with_crlf_line_ends_reads_clean_values(tmp_path: Path) -> None:
    """A `.env` saved by a Windows editor: no value may keep the carriage return."""
    (tmp_path / ".env").write_bytes(
        b"NAMESPACE=todo-win\r\nBACKEND_REPLICAS=3\r\nDATABASE_MAX_CONNECTIONS=200\r\n# a comment\r\nLLM_MODEL=\"m-1\"\r\n")
    settings = load_settings(tmp_path, environ={}).settings
    assert settings.namespace == "todo-win"
    assert settings.backend_replicas == 3
    assert settings.llm_model == "m-1"


@pytest.mark.parametrize(("platform", "sent"), [("win32", "break"), ("linux", signal.SIGTERM)])
def test_inv_dev_asks_its_apps_to_stop_cleanly_per_platform(platform: str, sent: Any) -> None:
    """Windows' send_signal(SIGTERM) is TerminateProcess (no drain, no clean-up): Ctrl-Break
    to the app's own process group instead, which Python apps (uvicorn) see as SIGBREAK."""
    got: list[int] = []
    process: Any = SimpleNamespace(send_signal=got.append)
    processes.ask_to_stop(process, platform)
    assert got == [getattr(signal, "CTRL_BREAK_EVENT", 1) if sent == "break" else sent]


def test_a_process_we_may_not_inspect_still_counts_as_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows answers AccessDenied for another user's process: it exists, so its port
    is taken; calling it dead would start a second port-forward on a busy port."""
    import psutil

    class Denied:
        def __init__(self, pid: int) -> None:
            raise psutil.AccessDenied(pid)

    monkeypatch.setattr(psutil, "Process", Denied)
    assert processes.alive(4242) is True


def test_stop_leaves_alone_a_process_that_took_over_the_kept_pid(tmp_path: Path) -> None:
    """Pids are reused: the kept one may be another program's by now."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        app_url.save(tmp_path, app_url.AppUrl("http://127.0.0.1:8080", app_url.PORT_FORWARD,
                                              "", "ctx/ns/svc", other.pid))
        app_url.stop(tmp_path)
        assert other.poll() is None  # still running
        assert app_url.load(tmp_path) is None  # the URL is forgotten all the same
    finally:
        other.kill()
        other.wait()
