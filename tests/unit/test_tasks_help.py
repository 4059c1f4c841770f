"""Every task is listed, documented, and every flag has help text."""

import subprocess
import sys

from tasks import ns

REQUIRED = {
    "build", "cluster", "deploy", "aiops", "verify", "docs",
    "up", "down", "status", "config", "lint", "rollback", "history",
}


def test_every_stage_and_control_task_is_registered() -> None:
    assert REQUIRED <= set(ns.task_names)


def test_every_task_has_a_docstring_and_every_flag_help() -> None:
    missing = []
    for name in ns.task_names:
        task = ns[name]
        if not (task.__doc__ or "").strip():
            missing.append(f"{name}: no docstring")
        for argument in task.get_arguments():
            if not argument.help:
                missing.append(f"{name} --{argument.name}: no help")
    assert missing == []


def test_inv_list_is_fast_and_shows_the_stages() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}
    assert REQUIRED <= listed
