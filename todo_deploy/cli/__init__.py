"""Shared plumbing for the Invoke tasks: settings, gate guards, results, exit codes.

Each module in this package holds the tasks of one concern; `tasks.py` at the
project root only collects them. A task imports the conductor (and any heavy
library) inside its body: `inv` loads every task module to parse the command
line, and `inv --list` or a no-change `inv build` must not pay for the stages
it does not run (the conductor's registry imports a stage when it runs). The tasks run the stages through the conductor
(todo_deploy/pipeline/conductor.py): guard, run, record and render happen there once.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import invoke
from invoke.exceptions import Exit

from todo_deploy.config.profiles import PROFILE_ENV

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings
    from todo_deploy.gates import GateResult

EXIT_SETTINGS = 2

PROFILE_HELP = ("Settings profile: layer .env.NAME over .env (as TODO_PROFILE=NAME does; "
                "`inv config --profile NAME` shows what it sets).")


@contextmanager
def _profile_env(profile: str) -> Iterator[None]:
    """TODO_PROFILE=`profile` while the task runs: load_settings and every process the
    task starts (pytest, a nested `inv`) read it from there."""
    before = os.environ.get(PROFILE_ENV)
    os.environ[PROFILE_ENV] = profile
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROFILE_ENV, None)
        else:
            os.environ[PROFILE_ENV] = before


def with_profile(body: Callable[..., Any]) -> Callable[..., Any]:
    """`body` with a last keyword `profile`: the task runs under that settings profile.

    Invoke has no global flags of a project's own, and it parses its own options before
    it imports tasks.py (too late to take `--profile` out of sys.argv), so every task
    gets the flag, and each task's `-h` lists it."""
    signature = inspect.signature(body)
    if "profile" in signature.parameters:
        return body

    @functools.wraps(body)
    def run(*args: Any, profile: str = "", **kwargs: Any) -> Any:
        if not profile:
            return body(*args, **kwargs)
        with _profile_env(profile):
            return body(*args, **kwargs)

    extra = inspect.Parameter("profile", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="")
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]  # read by inspect, undeclared
        parameters=[*signature.parameters.values(), extra]
    )
    return run


class ProjectTask(invoke.Task):
    """Every task of this project: `-h` is always help, `--profile NAME` picks a settings
    profile, and failures of the outside world are one line with the fix, exit 1."""

    def __init__(self, body: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(with_profile(body), *args, **kwargs)
        self.help = {**self.help, "profile": PROFILE_HELP}

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        # Invoke gives a flag the first free letter of its name: `--helm` would take
        # `-h`, and `inv up -h` would deploy with Helm instead of showing help.
        # `--profile` takes none: tasks' own flags keep the letters they had.
        taken = taken_names | (set(name) if name == "profile" else {"h"})
        return super().arg_opts(name, default, taken)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from todo_deploy.pipeline.failures import in_one_line

        call = super().__call__
        return in_one_line(lambda: call(*args, **kwargs))


# The modules that hold the tasks, in `inv --list` order; tasks.py collects them.
TASK_MODULES = (
    "up", "build", "cluster", "deploy", "aiops", "verify", "docs", "open", "logs", "core", "lint",
    "manifests", "dev", "watch", "bench", "mcp", "test", "prune",
)


def task_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(f"todo_deploy.cli.{name}") for name in TASK_MODULES]


def tasks_of(module: Any) -> list[invoke.Task]:
    return [
        obj for obj in vars(module).values()
        if isinstance(obj, invoke.Task) and obj.body.__module__ == module.__name__
    ]


def task_names() -> set[str]:
    """Every task name (and alias) of the project, as `inv` knows them."""
    return {
        name for module in task_modules() for t in tasks_of(module)
        for name in (t.name, *t.aliases)
    }


def task(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """`invoke.task` with ProjectTask as the default class."""
    kwargs.setdefault("klass", ProjectTask)
    return invoke.task(*args, **kwargs)


def load_or_exit() -> LoadedSettings:
    """Load and validate the settings (with the profile TODO_PROFILE or `--profile`
    names), or stop the task with exit code 2."""
    from todo_deploy.chart.values_check import load_checked
    from todo_deploy.config import SettingsError

    try:
        return load_checked()
    except SettingsError as exc:
        raise Exit(str(exc), code=EXIT_SETTINGS) from None


# The gate plumbing is the conductor's (todo_deploy/pipeline/conductor.py); these
# names stay for the tasks, imported when a task runs (not by `inv --list`).


def scopes(loaded: LoadedSettings) -> dict[str, str]:
    from todo_deploy.pipeline import conductor

    return conductor.scopes(loaded)


def guard(loaded: LoadedSettings, stage: str, force: bool) -> None:
    from todo_deploy.pipeline import conductor

    conductor.guard(loaded, stage, force)


def context_guard(loaded: LoadedSettings, force: bool) -> None:
    from todo_deploy.pipeline import conductor

    conductor.context_guard(loaded, force)


def finish(loaded: LoadedSettings, result: GateResult) -> GateResult:
    from todo_deploy.pipeline import conductor

    return conductor.finish(loaded, result)
