"""Processes this workflow starts and stops, the same way on Linux, macOS and Windows.

The POSIX idioms are wrong on Windows: `os.kill(pid, 0)` *terminates* the process
there instead of probing it, `signal.SIGHUP` does not exist, and `subprocess`
rejects `preexec_fn`. psutil answers "is it alive" and "stop it" on every
platform; the start options below detach a child the way each platform allows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

import psutil

# subprocess defines these on Windows only; the values are the Win32 ones.
CREATE_NEW_PROCESS_GROUP = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200)
DETACHED_PROCESS = getattr(subprocess, "DETACHED_PROCESS", 0x00000008)
CREATE_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)


def is_windows(platform: str | None = None) -> bool:
    return (platform or sys.platform) == "win32"


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie is not: it has exited)."""
    if pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:  # another user's process: it exists
        return True
    except (psutil.NoSuchProcess, ValueError):
        return False


def runs(pid: int, word: str) -> bool:
    """Whether process `pid` has `word` in its command line: a pid kept in a file may
    belong to another program by now (pids are reused), which must not be stopped."""
    try:
        return any(word in part for part in psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return False


def terminate(pid: int, timeout: float = 5.0) -> bool:
    """Ask `pid` to stop (SIGTERM; TerminateProcess on Windows), kill it after `timeout`.

    Returns whether it is gone."""
    try:
        process = psutil.Process(pid)
        process.terminate()
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except (psutil.AccessDenied, psutil.TimeoutExpired):
        return False
    return True


def detached(platform: str | None = None) -> dict[str, Any]:
    """Popen options for a background process that outlives us and our terminal's Ctrl-C."""
    if is_windows(platform):
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def own_group(platform: str | None = None) -> dict[str, Any]:
    """Popen options for a child in its own process group: the terminal's Ctrl-C reaches
    only us, and we stop the children in order."""
    if is_windows(platform):
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that mean "stop" here: SIGHUP (terminal closed) only where it exists,
    SIGBREAK (Ctrl-Break, a console closing) on Windows."""
    names = ("SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK")
    return tuple(getattr(signal, name) for name in names if hasattr(signal, name))


def ask_to_stop(process: subprocess.Popen, platform: str | None = None) -> None:
    """Ask a child started with `own_group` to shut down cleanly: SIGTERM on POSIX; on
    Windows, where `send_signal(SIGTERM)` is TerminateProcess (no clean-up), Ctrl-Break to
    its process group (Python apps see it as SIGBREAK)."""
    if is_windows(platform):
        process.send_signal(getattr(signal, "CTRL_BREAK_EVENT", 1))
    else:
        process.send_signal(signal.SIGTERM)
