"""`inv watch`: rebuild and roll only what a save changed, until Ctrl-C."""

from __future__ import annotations

from invoke import Context

from todo_deploy.cli import guard, load_or_exit, task


@task(
    help={
        "timeout": "Longest wait for one rollout in seconds (default 120); a rollout that "
        "does not finish is rolled back to the previous images.",
        "force": "Run even when the deploy gate has not passed yet.",
        "dev": "Live update: deploy in dev mode, then sync saved Python, template and static "
        "files of the apps into the running pods (no image, no new pod); dependencies, "
        "Dockerfiles, migrations, the chart and settings are still rebuilt and rolled. "
        "`inv up` or `inv deploy` returns to the built images.",
    }
)
def watch(c: Context, timeout: int = 120, force: bool = False, dev: bool = False) -> None:
    """On each save, rebuild only the changed image and roll only its component.

    Watches app/, docker/ and the chart and prints every phase with its duration.
    The old pods serve until the new ones are ready; a failed build, rollout or smoke
    test leaves (or puts back) the previous version and says why. Ctrl-C stops.
    """
    from todo_deploy.console import say
    from todo_deploy.watch import watch as run

    loaded = load_or_exit()
    guard(loaded, "deploy", force)  # something must be deployed to roll
    run(loaded, log=say, timeout_s=int(timeout), dev=dev)
