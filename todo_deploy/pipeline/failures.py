"""Failures of the outside world (no kubeconfig, an unreachable API server or Docker
engine): one line and what to run, never a traceback, for every front door.

Matched by module so that no heavy SDK is imported to name its classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from invoke.exceptions import Exit

T = TypeVar("T")

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


def in_one_line(run: Callable[[], T]) -> T:
    """`run()`, with a failure of the outside world as an Exit of one line (code 1); a bug
    keeps its traceback."""
    try:
        return run()
    except Exit:
        raise
    except Exception as exc:
        message = outside_world_failure(exc)
        if message is None:
            raise
        raise Exit(message, code=1) from None
