"""Rollback for the raw path: apply the objects of an earlier passing deploy again
(.state/passing-renders.json, applied.remember_render) and wait for their rollout.

Used by a failed `inv deploy` (back to the last render that passed, as Helm's
rollback-on-failure does for a release) and by `inv rollback` without Helm (back to
the deploy before the current one). Jobs are not re-applied: a migration that ran is
not undone, and a finished Job's pod template cannot be changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from todo_deploy.console import say
from todo_deploy.kube import (
    Kube,
    KubeError,
    ObjectRef,
    applied,
    deployment_state,
    statefulset_state,
)
from todo_deploy.release.objects import parallel

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings

ROLLED_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def describe(render: dict[str, Any]) -> str:
    images = render.get("images") or {}
    return ", ".join(f"{k} {v}" for k, v in sorted(images.items())) or "(no images recorded)"


def restore(kube: Kube, render: dict[str, Any], timeout_s: float,
            log: Callable[[str], None]) -> Outcome:
    """Apply `render`'s objects (Jobs aside) and wait for its workloads to roll out."""
    objects = [o for o in render.get("objects", []) if o.get("kind") != "Job"]
    what = describe(render)
    log(f"rollback: applying the objects of the last passing deploy ({what})")
    started = time.monotonic()
    try:
        parallel(kube.apply, objects)
        refs = [ObjectRef.of(o) for o in objects if o["kind"] in ROLLED_KINDS]
        pending = wait_rolled_out(kube, refs, max(5.0, timeout_s), log)
    except KubeError as exc:
        return Outcome(False, f"rollback to {what} failed: {exc}")
    if pending:
        return Outcome(False, f"rollback to {what} did not roll out: {'; '.join(pending)}")
    return Outcome(True, f"rolled back to the last passing deploy ({what}) in "
                         f"{time.monotonic() - started:.1f}s")


def wait_rolled_out(kube: Kube, refs: list[ObjectRef], timeout_s: float,
                    log: Callable[[str], None]) -> list[str]:
    """Wait for the workloads' rollout state alone: the crashing pods of the deploy being
    undone are still there at first, and are what the rollback removes (kube.wait_for
    would call them the rollback's failure). Returns what did not finish."""
    deadline = time.monotonic() + timeout_s
    said: dict[str, str] = {}
    while True:
        pending = []
        for ref in refs:
            found = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
            if found is None:
                continue
            state = (deployment_state(kube, found) if ref.kind == "Deployment"
                     else statefulset_state(found))
            if not state.done:
                pending.append(f"{ref}: {state.failed or state.summary}")
                if said.get(str(ref)) != state.summary:
                    said[str(ref)] = state.summary
                    log(f"  rollback: {ref}: {state.summary}")
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(1.0)


def rollback(loaded: LoadedSettings, *, kube: Kube | None = None,
             log: Callable[[str], None] = say) -> Outcome:
    """`inv rollback` for raw deployments: back to the passing deploy before the current one."""
    settings = loaded.settings
    scope = applied.scope_of(settings)
    renders = applied.passing_renders(loaded.state_dir, scope)
    if len(renders) < 2:
        return Outcome(False, (
            f"nothing to roll back to: {len(renders)} passing raw deploy"
            f"{'' if len(renders) == 1 else 's'} of {settings.release_name} in "
            f"{settings.namespace} recorded (.state/{applied.RENDERS}); a rollback needs an "
            "earlier one"))
    started = time.monotonic()
    kube = kube or Kube(settings.context_name)
    outcome = restore(kube, renders[-2], settings.deploy_timeout_seconds, log)
    if outcome.ok:
        applied.drop_newest_render(loaded.state_dir, scope)
        applied.forget(loaded.state_dir)  # the next deploy compares with the live objects
        return Outcome(True, outcome.message.replace("the last passing deploy",
                                                     "the previous passing deploy")
                       + f" ({time.monotonic() - started:.1f}s in all)")
    return outcome
