"""`inv cluster`: start or adopt the cluster, deliver the images, check capacity."""

from __future__ import annotations

from invoke import Context

from todo_deploy.cli import load_or_exit, task


@task(help={"force": "Run even when the build gate has not passed."})
def cluster(c: Context, force: bool = False) -> None:
    """Start or adopt the cluster, deliver the images, check it can run the app.

    CLUSTER_PROVIDER picks minikube, kind, docker-desktop or an existing context.
    """
    from todo_deploy.pipeline import conductor

    conductor.run_stage(load_or_exit(), "cluster", force=force)
