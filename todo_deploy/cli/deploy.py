"""`inv deploy [--helm]`, `inv rollback`, `inv history`, `inv down`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings


@task(
    help={
        "helm": "Deploy with the Helm chart (helm CLI, else embedded Helm v4) instead of "
        "the raw manifests.",
        "dry_run": "Only render (Helm: the chart) and list the objects; touch nothing.",
        "force": "Run even when the cluster gate has not passed, or when the target "
        "context is not the profile's (the wrong-cluster guard).",
        "timeout": "Longest wait for the rollout in seconds (default DEPLOY_TIMEOUT_SECONDS).",
    }
)
def deploy(
    c: Context, helm: bool = False, dry_run: bool = False, force: bool = False, timeout: int = 0
) -> None:
    """Deploy the built images (raw manifests, or the chart with --helm).

    Secrets through the API, server-side apply in order, migrations, rollout with
    a deadline; any failure is explained and exits non-zero.
    """
    loaded = load_or_exit()
    if dry_run:
        show_dry_run(loaded, helm)
        return
    from todo_deploy.pipeline import conductor

    conductor.run_deploy(loaded, helm=helm, force=force, timeout_s=int(timeout) or None)


def show_dry_run(loaded: LoadedSettings, helm: bool) -> None:
    from todo_deploy.console import say

    if helm:
        from todo_deploy.pipeline.registry import stage_module

        stage_module("helm").dry_run(loaded)
        return
    from todo_deploy.artifacts import load_images
    from todo_deploy.chart import manifests
    from todo_deploy.chart import values as chart_values

    images = load_images(loaded.state_dir) or chart_values.default_images()
    objects = manifests.render_manifests(loaded.settings, images)
    for obj in objects:
        say(f"{obj['kind']}/{obj['metadata']['name']}")
    for name in chart_values.secret_data(loaded.settings):
        say(f"Secret/{name}  (created through the API at deploy time)")
    say(f"{len(objects)} objects rendered; nothing applied (--dry-run)")


@task(help={"revision": "Helm: the revision to return to (default: the newest earlier one "
                        "that ran). Raw manifests: always the previous passing deploy."})
def rollback(c: Context, revision: int = 0) -> None:
    """Roll back (the Helm release, or the raw deploy to the previous passing one) and wait."""
    from todo_deploy.console import say
    from todo_deploy.helm import HelmUnavailable
    from todo_deploy.pipeline.registry import stage_module

    try:
        ok, message = stage_module("helm").rollback_any(load_or_exit(), int(revision) or None)
    except HelmUnavailable as exc:
        raise Exit(str(exc), code=1) from None
    if not ok:
        raise Exit(message, code=1)
    say(message)


@task
def history(c: Context) -> None:
    """Show the Helm release's revisions with their descriptions."""
    from rich.table import Table

    from todo_deploy.console import console, say
    from todo_deploy.helm import HelmUnavailable
    from todo_deploy.pipeline.registry import stage_module

    loaded = load_or_exit()
    try:
        entries = stage_module("helm").history(loaded)
    except HelmUnavailable as exc:
        raise Exit(str(exc), code=1) from None
    if not entries:
        say(f"no Helm release {loaded.settings.release_name} in {loaded.settings.namespace}")
        return
    table = Table(title=f"{loaded.settings.release_name} history", title_justify="left")
    for column in ("revision", "updated", "status", "chart", "app version", "description"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(str(e["revision"]), e.get("updated", ""), e.get("status", ""),
                      e.get("chart", ""), e.get("app_version", ""), e.get("description", ""))
    console().print(table)


@task(
    help={
        "all": "Also delete the namespace (only when no data is kept).",
        "yes": "Delete the data (PersistentVolumeClaims) without asking.",
    }
)
def down(c: Context, all_: bool = False, yes: bool = False) -> None:
    """Remove the app (Helm release or raw objects); asks before deleting data."""
    from todo_deploy.pipeline.registry import stage_module

    result = stage_module("teardown").run(load_or_exit(), all_=all_, yes=yes)
    if not result.clean:
        raise Exit(result.message, code=1)
