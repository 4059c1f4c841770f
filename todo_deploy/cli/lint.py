"""`inv lint`: static checks of Dockerfiles, manifests and chart (no cluster)."""

from __future__ import annotations

from todo_deploy.cli import finish, load_or_exit, task


@task
def lint(c):  # type: ignore[no-untyped-def]
    """Static checks of the Dockerfiles, manifests and chart; non-zero on any failure.

    hadolint, `helm lint --strict`, strict Kubernetes schemas (1.30 and the newest
    known) and the Pod Security "restricted" check; no cluster needed.
    """
    from todo_deploy.stages import lint as stage

    loaded = load_or_exit()
    finish(loaded, stage.run(loaded))
