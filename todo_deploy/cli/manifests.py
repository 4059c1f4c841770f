"""`inv manifests`: regenerate k8s/ from the Helm chart, or check it has not drifted."""

from __future__ import annotations

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import task


@task(help={"check": "Only compare k8s/ with the chart; exit non-zero when they differ."})
def manifests(c: Context, check: bool = False) -> None:
    """Write k8s/: the chart rendered with its default values (plus the Namespace)."""
    from todo_deploy.chart import manifests as generator
    from todo_deploy.console import say

    if check:
        problems = generator.drift()
        for line in problems:
            say(line)
        if problems:
            raise Exit("k8s/ is stale: run `inv manifests` and commit the result", code=1)
        say("k8s/ matches the chart")
        return
    changed = generator.write()
    say("\n".join(changed) if changed else "k8s/ already matches the chart")
