"""`inv up`: every stage in order, stopping at the first gate that fails (the order and
its policies are the conductor's: todo_deploy/pipeline/conductor.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings


@task(
    help={
        "helm": "Deploy with the Helm chart (stage 4) instead of the raw manifests (stage 3).",
        "full": "Run the disruptive verify checks (pod deletion, restarts) even if nothing "
        "changed since they last passed.",
        "gordon": "Ask Gordon (docker ai) to review the Dockerfiles during the build.",
        "until": "Stop after this stage: build, cluster, deploy, aiops, verify or docs "
        "(e.g. --until deploy for the edit-deploy loop).",
        "force": "Deploy even when the target context is not the profile's (the "
        "wrong-cluster guard, checked before anything is built).",
        "dev": "Live update: build and deploy in dev mode, then stay in `inv watch --dev`'s "
        "loop (saves synced into the pods). A later `inv up` returns to the built images.",
    }
)
def up(
    c: Context, helm: bool = False, full: bool = False, gordon: bool = False, until: str = "",
    force: bool = False, dev: bool = False,
) -> None:
    """Build, start the cluster, deploy, run the doctor, verify and write the docs.

    Stops at the first gate that fails, naming the check and its fix. With nothing
    changed it builds nothing, rolls nothing, and skips the checks that delete pods.
    """
    from todo_deploy.pipeline import conductor

    loaded = load_or_exit()
    options = conductor.UpOptions(helm=helm, full=full, gordon=gordon, until=until, force=force,
                                  dev=dev)
    if conductor.up(loaded, options):
        _announce(loaded)
    elif dev and options.until in ("", "deploy"):
        _watch_dev(loaded)


def _watch_dev(loaded: LoadedSettings) -> None:
    """`inv up --dev` after its dev-mode deploy: `inv watch --dev`'s loop (no second deploy)."""
    from todo_deploy.console import say
    from todo_deploy.watch import watch

    say("inv up --dev: watching for saves (Ctrl-C to stop; `inv up` returns to the built images)")
    watch(loaded, log=say, dev=True, deploy_first=False)


def _announce(loaded: LoadedSettings) -> None:
    """The last lines: where the app answers from this machine."""
    from todo_deploy.access import app_url
    from todo_deploy.cli.open import describe
    from todo_deploy.console import say

    say("All gates passed. The report is in docs/deployment-report.md.")
    before = app_url.load(loaded.state_dir)
    try:
        app = app_url.ensure(loaded)
    except RuntimeError as exc:
        raise Exit(f"the app is deployed but cannot be reached from here: {exc}\n"
                   "`inv open --forward` retries with a port-forward", code=1) from None
    if before and before.url != app.url:
        say(f"Note: the app's URL changed (it was {before.url}): the Service was recreated "
            "or the way to reach it changed.")
    say(f"The app: {app.url}  ({describe(app)})")
