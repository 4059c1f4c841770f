"""Playbooks: named sets of prompts, each sent to every available tool it names.

- `health`: why pods fail in the namespace, and the cluster's health.
- `resources`: right-size requests and limits from what is running.
- `scale`: scale the backend Deployment to N replicas (only with --allow-changes).
- `dockerfiles`: Gordon reviews docker/*.Dockerfile (Gordon only), reading them
  itself from the project directory it runs in (`docker ai -C <root>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from todo_deploy.tools.gordon import dockerfile_prompt

if TYPE_CHECKING:
    from todo_deploy.config import Settings

CLUSTER_TOOLS = ("kubectl-ai", "kagent", "gordon")
READ_ONLY = "Do not change anything in the cluster: only read and explain."
PLAYBOOKS = ("health", "resources", "scale", "dockerfiles")
CHOICES = ("doctor", *PLAYBOOKS)


class PlaybookRefused(Exception):
    """The playbook may not run as asked (a change without --allow-changes, a bad argument)."""


@dataclass(frozen=True)
class Playbook:
    name: str
    tools: tuple[str, ...]
    prompts: tuple[str, ...]
    changes: bool = False


def backend_deployment(settings: Settings) -> str:
    return f"{settings.release_name}-backend"


def build(
    name: str,
    settings: Settings,
    *,
    namespace: str,
    allow_changes: bool = False,
    replicas: int | None = None,
    root: Path | None = None,
) -> Playbook:
    """The playbook `name` for this release, or PlaybookRefused saying why not."""
    if name == "health":
        return _health(namespace, settings.release_name)
    if name == "resources":
        return _resources(namespace)
    if name == "scale":
        return _scale(settings, namespace, replicas, allow_changes)
    if name == "dockerfiles":
        return _dockerfiles(root or Path.cwd())
    raise PlaybookRefused(f"unknown playbook {name!r}: choose one of {', '.join(CHOICES)}")


def _health(namespace: str, release: str) -> Playbook:
    """Why the release's pods fail, and the cluster's health."""
    return Playbook(
        "health",
        CLUSTER_TOOLS,
        (
            (
                f"Why are pods failing in namespace {namespace} (release {release})? For "
                "each pod that is not Running and Ready, give the cause from its status, "
                f"events and logs, and the fix. {READ_ONLY}"
            ),
            (
                "Summarise the health of this Kubernetes cluster: node conditions, "
                f"pressure, system pods, and warning events of the last hour. {READ_ONLY}"
            ),
        ),
    )


def _resources(namespace: str) -> Playbook:
    """Right-sized requests and limits for the namespace's workloads."""
    return Playbook(
        "resources",
        CLUSTER_TOOLS,
        (
            (
                f"For each Deployment and StatefulSet in namespace {namespace}, compare the "
                "containers' CPU and memory requests and limits with what they are using "
                "now and with the node's allocatable capacity, and recommend right-sized "
                f"requests and limits as a table. {READ_ONLY}"
            ),
        ),
    )


def _scale(settings: Settings, namespace: str, replicas: int | None,
           allow_changes: bool) -> Playbook:
    """Scale the backend to `replicas` (1-20): a change, so only with `allow_changes`."""
    deployment = backend_deployment(settings)
    if replicas is None:
        raise PlaybookRefused("the scale playbook needs --replicas N (1-20)")
    if not 1 <= replicas <= 20:
        raise PlaybookRefused(f"--replicas must be between 1 and 20, not {replicas}")
    if not allow_changes:
        raise PlaybookRefused(
            f"the scale playbook changes the cluster (Deployment/{deployment} in "
            f"{namespace} to {replicas} replicas) and the AI tools are read-only by "
            "default: re-run with --allow-changes to let them act"
        )
    return Playbook(
        "scale",
        CLUSTER_TOOLS,
        (
            (
                f"Scale the Deployment {deployment} in namespace {namespace} to {replicas} "
                "replicas, wait until the new replicas are Ready, and report the final "
                "ready/desired count. Change nothing else."
            ),
        ),
        changes=True,
    )


def _dockerfiles(project: Path) -> Playbook:
    """A review of each of the project's Dockerfiles, by Gordon."""
    base = project / "docker"
    files = sorted(base.glob("*.Dockerfile"))
    prompts = tuple(dockerfile_prompt(path, project) for path in files)
    if not prompts:
        raise PlaybookRefused(f"no Dockerfiles to review: {base}/*.Dockerfile matches nothing")
    return Playbook("dockerfiles", ("gordon",), prompts)
