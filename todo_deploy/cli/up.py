"""`inv up`: every stage in order, stopping at the first gate that fails."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task

# Checks that delete pods: run when what is deployed changed since the last
# full verify (or with --full), not on a re-run where nothing changed.
DISRUPTIVE_CHECKS = ("self-healing", "persistence")


def deployment_fingerprint(settings_json: str, images_json: str, helm: bool) -> str:
    """What was deployed: the settings, the image tags and the mode, hashed."""
    digest = hashlib.sha256()
    for part in (settings_json, images_json, "helm" if helm else "raw"):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _last_full_verify(state_dir: Path) -> str:
    try:
        return json.loads(_read(state_dir / "up.json"))["fully_verified"]
    except (ValueError, KeyError, TypeError):
        return ""


@task(
    help={
        "helm": "Deploy with the Helm chart (stage 4) instead of the raw manifests (stage 3).",
        "full": "Run the disruptive verify checks (pod deletion, restarts) even if nothing "
        "changed since they last passed.",
        "gordon": "Ask Gordon (docker ai) to review the Dockerfiles during the build.",
    }
)
def up(c, helm=False, full=False, gordon=False):  # type: ignore[no-untyped-def]
    """Build, start the cluster, deploy, run the doctor, verify and write the docs.

    Stops at the first gate that fails, naming the check and its fix. With nothing
    changed it builds nothing, rolls nothing, and skips the checks that delete pods.
    """
    from todo_deploy.cli.aiops import aiops
    from todo_deploy.cli.build import build
    from todo_deploy.cli.cluster import cluster
    from todo_deploy.cli.deploy import deploy
    from todo_deploy.cli.docs import docs
    from todo_deploy.cli.verify import verify
    from todo_deploy.console import say

    loaded = load_or_exit()
    state = loaded.state_dir

    def fingerprint() -> str:
        settings_json = loaded.settings.model_dump_json()
        return deployment_fingerprint(settings_json, _read(state / "images.json"), helm)

    def verify_step() -> None:
        unchanged = not full and _last_full_verify(state) == fingerprint()
        if unchanged:
            say("verify: nothing changed since the last full verify; skipping the checks "
                f"that delete pods ({', '.join(DISRUPTIVE_CHECKS)}). `inv up --full` runs them.")
        verify(c, skip=",".join(DISRUPTIVE_CHECKS) if unchanged else "")
        if not unchanged:
            (state / "up.json").write_text(json.dumps({"fully_verified": fingerprint()}))

    steps: list[tuple[str, Callable[[], object]]] = [
        ("build", lambda: build(c, gordon=gordon)),
        ("cluster", lambda: cluster(c)),
        ("helm" if helm else "deploy", lambda: deploy(c, helm=helm)),
        ("aiops doctor", lambda: aiops(c, playbook="doctor")),
        ("verify", verify_step),
        ("docs", lambda: docs(c)),
    ]
    timings: list[tuple[str, float]] = []
    for number, (name, step) in enumerate(steps, start=1):
        say(f"\n━━ [{number}/{len(steps)}] {name}")
        started = time.monotonic()
        try:
            step()
        except Exit as exc:
            timings.append((name, time.monotonic() - started))
            _summary(timings)
            raise Exit(
                f"inv up stopped at stage '{name}': {exc.message or 'its gate failed'}\n"
                "Fix what the gate names above, then run `inv up` again.",
                code=exc.code or 1,
            ) from None
        timings.append((name, time.monotonic() - started))
    _summary(timings)
    say("All gates passed. The report is in docs/deployment-report.md.")


def _summary(timings: list[tuple[str, float]]) -> None:
    from todo_deploy.console import say

    total = sum(seconds for _, seconds in timings)
    say("stage timings: " + ", ".join(f"{n} {s:.1f}s" for n, s in timings) + f" (total {total:.1f}s)")
