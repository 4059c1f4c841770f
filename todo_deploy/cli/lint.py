"""`inv lint`: static checks of Dockerfiles, manifests and chart (no cluster)."""

from __future__ import annotations

from invoke import Context

from todo_deploy.cli import load_or_exit, task


@task
def lint(c: Context) -> None:
    """Static checks of the Dockerfiles, manifests and chart; non-zero on any failure.

    hadolint, `helm lint --strict`, strict Kubernetes schemas (1.30 and the newest
    known) and the Pod Security "restricted" check; no cluster needed.
    """
    from todo_deploy.pipeline import conductor

    conductor.run_stage(load_or_exit(), "lint", guarded=False)  # no predecessor
