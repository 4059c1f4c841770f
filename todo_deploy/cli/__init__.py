"""Shared plumbing for the Invoke tasks: settings, gate guards, results, exit codes.

Each module in this package holds the tasks of one concern; `tasks.py` at the
project root only collects them. A task imports its stage (and any heavy
library) inside its body: `inv` loads every task module to parse the command
line, and `inv --list` or a no-change `inv build` must not pay for the stages
it does not run. Outside cli/, our own modules import each other at the top.
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

# Failures of the outside world (no kubeconfig, an unreachable API server or
# Docker engine) end a task with one line and what to run, never a traceback.
# Matched by module so that no heavy SDK is imported to name its classes.
_CLUSTER_FIX = "check that `kubectl config current-context` (or KUBE_CONTEXT) answers, or run `inv cluster`"
_DOCKER_FIX = "start Docker and check that `docker info` answers"
_OUTSIDE_WORLD = {
    "todo_deploy.kube": ("the cluster", _CLUSTER_FIX),
    "kubernetes": ("the cluster", _CLUSTER_FIX),
    "urllib3": ("the cluster", _CLUSTER_FIX),
    "helm_python": ("Helm", _CLUSTER_FIX),
    "todo_deploy.helm": ("Helm", _CLUSTER_FIX),  # HelmUnavailable: either engine, no cluster
    "todo_deploy.images": ("Docker", _DOCKER_FIX),
    "docker": ("Docker", _DOCKER_FIX),
}


def outside_world_failure(exc: BaseException) -> str | None:
    """One line for a failure of a tool or service the task depends on; None for a bug."""
    for cls in type(exc).__mro__:
        module = cls.__module__
        for prefix, (what, fix) in _OUTSIDE_WORLD.items():
            if module == prefix or module.startswith(prefix + "."):
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                return f"{what}: {first[:300]}\n{fix}"
    return None


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
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
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
        try:
            return super().__call__(*args, **kwargs)
        except Exit:
            raise
        except Exception as exc:
            message = outside_world_failure(exc)
            if message is None:
                raise
            raise Exit(message, code=1) from None


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
    from todo_deploy.config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise Exit(str(exc), code=EXIT_SETTINGS) from None


def scopes(loaded: LoadedSettings) -> dict[str, str]:
    """stage -> what its gate describes under the current settings."""
    from todo_deploy.gates import scopes_for

    return scopes_for(loaded.settings)


def guard(loaded: LoadedSettings, stage: str, force: bool) -> None:
    """Refuse to run `stage` unless a predecessor's gate passed (or --force)."""
    from todo_deploy.console import say
    from todo_deploy.gates import refusal

    reason = refusal(loaded.state_dir, stage, scopes(loaded))
    if reason is None:
        return
    if force:
        say(f"--force: running anyway. {reason}")
        return
    raise Exit(reason + " (or pass --force to run anyway)", code=1)


def context_guard(loaded: LoadedSettings, force: bool) -> None:
    """Refuse to deploy a profile's settings to another cluster, or other settings to a
    profile's cluster (todo_deploy/config/profiles.py), unless --force."""
    from todo_deploy.config.profiles import context_refusal
    from todo_deploy.console import say

    reason = context_refusal(loaded)
    if reason is None:
        return
    if force:
        say(f"--force: deploying anyway. {reason}")
        return
    raise Exit(f"refusing to deploy: {reason}", code=1)


def finish(loaded: LoadedSettings, result: GateResult) -> GateResult:
    """Persist and print a gate result; exit non-zero when it failed."""
    from todo_deploy.console import render_gate
    from todo_deploy.pipeline import record

    record(loaded, result)
    render_gate(result)
    if not result.passed:
        names = ", ".join(c.name for c in result.failures)
        raise Exit(f"{result.stage} gate failed: {names}", code=1)
    return result
