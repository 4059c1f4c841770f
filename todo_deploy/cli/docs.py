"""`inv docs`: stage 7, the deployment report written from live state."""

from __future__ import annotations

from invoke import Context

from todo_deploy.cli import load_or_exit, task


@task(help={"force": "Run even if no deploy/helm gate has passed."})
def docs(c: Context, force: bool = False) -> None:
    """Write docs/deployment-report.md (+ .json) and docs/architecture.svg from the cluster.

    Lists the deployed objects with their status, the built images, every stage's gate,
    the verify results, the AIOps findings, how to reach the app, and an architecture
    diagram (graphviz SVG plus a Mermaid block). Secret values never appear: only the
    Secrets' names and key names.
    """
    from todo_deploy.pipeline import conductor

    conductor.run_docs(load_or_exit(), force=force)
