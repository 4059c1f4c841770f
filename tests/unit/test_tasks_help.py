"""Every task is listed, documented, and every flag has help text."""

import subprocess
import sys
from pathlib import Path

from tasks import ns

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = {
    "build", "cluster", "deploy", "aiops", "verify", "docs",
    "up", "down", "status", "config", "lint", "rollback", "history",
}


def test_every_stage_and_control_task_is_registered() -> None:
    assert REQUIRED <= set(ns.task_names)


CHECK_HELP = """
from tasks import ns
missing = []
for name in ns.task_names:
    task = ns[name]
    if not (task.__doc__ or "").strip():
        missing.append(f"{name}: no docstring")
    for argument in task.get_arguments():
        if not argument.help:
            missing.append(f"{name} --{argument.name}: no help")
print("\\n".join(missing))
"""


def test_every_task_has_a_docstring_and_every_flag_help() -> None:
    # In a fresh process: Invoke hands each help text out once (get_arguments
    # pops it), so a task another test already parsed would look undocumented.
    done = subprocess.run(
        [sys.executable, "-c", CHECK_HELP], capture_output=True, text=True, timeout=60,
        check=False, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_inv_list_is_fast_and_shows_the_stages() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}
    assert REQUIRED <= listed


def test_inv_lets_python_cache_the_workflows_bytecode(tmp_path: Path) -> None:
    """Invoke turns bytecode writing off by default; tasks.py gives Python its own setting
    back, so `inv` does not recompile todo_deploy on every command (and -B still wins)."""
    import os

    def cached_after(extra: dict[str, str], prefix: Path) -> list[Path]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(extra, PYTHONPYCACHEPREFIX=str(prefix))
        done = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "--list"],
                              capture_output=True, text=True, timeout=60, check=False, env=env)
        assert done.returncode == 0, done.stderr
        return list(prefix.rglob("todo_deploy/cli/*.pyc"))

    assert cached_after({}, tmp_path / "on")
    assert not cached_after({"PYTHONDONTWRITEBYTECODE": "1"}, tmp_path / "off")


def test_tasks_py_leaves_the_collector_on_and_freezes_it_out_at_exit() -> None:
    """The collector is off only while tasks.py imports the workflow; the objects are frozen
    by the last exit handler, so the interpreter's final collections skip them."""
    probe = (
        "import atexit, gc, runpy, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        f"runpy.run_path({str(ROOT / 'tasks.py')!r})\n"
        "print('enabled after import:', gc.isenabled(), 'frozen before exit:', gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["enabled after import: True frozen before exit: False",
                                        "frozen at exit: True"], done.stdout
