"""Shared plumbing for the Invoke tasks: settings, gate guards, results, exit codes.

Each module in this package holds the tasks of one concern; `tasks.py` at the
project root only collects them. Heavy libraries are imported inside task
bodies so that `inv --list` and no-change runs stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.exceptions import Exit

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings
    from todo_deploy.gates import GateResult

EXIT_SETTINGS = 2


def load_or_exit() -> LoadedSettings:
    """Load and validate the settings, or stop the task with exit code 2."""
    from todo_deploy.config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise Exit(str(exc), code=EXIT_SETTINGS) from None


def guard(loaded: LoadedSettings, stage: str, force: bool) -> None:
    """Refuse to run `stage` unless a predecessor's gate passed (or --force)."""
    from todo_deploy.console import say
    from todo_deploy.gates import refusal

    reason = refusal(loaded.state_dir, stage)
    if reason is None:
        return
    if force:
        say(f"--force: running anyway. {reason}")
        return
    raise Exit(reason + " (or pass --force to run anyway)", code=1)


def finish(loaded: LoadedSettings, result: GateResult) -> GateResult:
    """Persist and print a gate result; exit non-zero when it failed."""
    from todo_deploy.console import render_gate
    from todo_deploy.gates import save

    save(loaded.state_dir, result)
    render_gate(result)
    if not result.passed:
        names = ", ".join(c.name for c in result.failures)
        raise Exit(f"{result.stage} gate failed: {names}", code=1)
    return result
