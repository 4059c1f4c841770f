"""`inv up`: every stage in order, stopping at the first gate that fails."""

from __future__ import annotations

import time
from collections.abc import Callable

from invoke.exceptions import Exit

from todo_deploy.cli import context_guard, load_or_exit, task
from todo_deploy.gates import STAGES
from todo_deploy.pipeline import steps
from todo_deploy.pipeline.prefetch import Prefetch


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
    }
)
def up(c, helm=False, full=False, gordon=False, until="", force=False):  # type: ignore[no-untyped-def]
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

    def verify_step() -> None:
        # Imported here: the verify stage's HTTP client (~50 ms of imports) would otherwise
        # delay every `inv up --until build|deploy` before its first stage.
        from todo_deploy.stages.verify.stage import DISRUPTIVE_CHECKS

        same = not full and _same_deployment_fully_verified(loaded)
        if same:
            say("verify: this deployment (same objects, settings and images) already passed "
                f"the checks that delete pods ({', '.join(DISRUPTIVE_CHECKS)}); skipping them. "
                "`inv up --full` runs them.")
        verify(c, skip=",".join(DISRUPTIVE_CHECKS) if same else "")

    def deploy_step(helm_mode: bool) -> None:
        deployed = False
        try:
            deploy(c, helm=helm_mode, force=force)
            deployed = True
            _new_code_serving(loaded, beside.previous if beside is not None else {})
        finally:
            if beside is not None:
                beside.finish(lambda: deploy(c, helm=helm_mode, force=force), deployed)

    def cluster_step() -> None:
        if ahead is not None:
            ahead.wait()
        cluster(c)

    run: dict[str, Callable[[], object]] = {
        "build": lambda: beside.build(gordon) if beside else build(c, gordon=gordon),
        "cluster": cluster_step,
        "deploy": lambda: deploy_step(False),
        "helm": lambda: deploy_step(True),
        "aiops": lambda: aiops(c, playbook="doctor"),
        "verify": verify_step,
        "docs": lambda: docs(c),
    }
    total = len(STAGES)
    chosen = steps(helm)
    stops = [("deploy" if s.stage == "helm" else s.stage) for s in chosen]
    if until and until not in stops:
        raise Exit(f"--until must be one of {', '.join(stops)}, not {until!r}", code=2)
    if until:
        chosen = chosen[: stops.index(until) + 1]
    if until not in ("build", "cluster"):
        context_guard(loaded, force)
    if any(step.stage == "cluster" for step in chosen):
        _provider_or_exit(loaded)
    # When this run deploys, a new image's smoke test runs after its rollout, and the
    # deploy's render and imports are done while the engine builds (todo_deploy/pipeline/prefetch.py).
    deploys = until not in ("build", "cluster")
    ahead = Prefetch(loaded) if deploys and not helm else None
    beside = _SmokeAfterRollout(loaded, ahead) if deploys else None
    timings: list[tuple[str, float]] = []
    for step in chosen:
        if step.stage == "helm":
            say(f"\n━━ stage 3/{total} raw manifests: replaced by the Helm chart (--helm)")
        if step.stage == "aiops" and not helm:
            say(f"\n━━ stage 4/{total} Helm chart: not used (`inv up --helm` deploys with the chart)")
        command = "inv aiops doctor" if step.stage == "aiops" else step.command
        say(f"\n━━ stage {step.number}/{total} {step.title}: {command}")
        started = time.monotonic()
        try:
            run[step.stage]()
        except Exit as exc:
            if ahead is not None:
                ahead.wait()  # not left writing the render cache as the process exits
            timings.append((step.title, time.monotonic() - started))
            _summary(timings)
            raise Exit(
                f"inv up stopped at stage {step.number}/{total} ({step.title}): "
                f"{exc.message or 'its gate failed'}\n"
                "Fix what the gate names above, then run `inv up` again.",
                code=exc.code or 1,
            ) from None
        timings.append((step.title, time.monotonic() - started))
    _summary(timings)
    if until and until != "docs":
        say(f"Stopped after {chosen[-1].title} (--until {until}); the later gates did not run.")
        return
    _announce(loaded)


class _SmokeAfterRollout:
    """`inv up`'s build when the same run deploys: a new image's smoke test (the build
    gate's healthy/endpoint/non-root/cleanup checks) runs once the rollout is done, so
    the new pods serve without waiting for it or sharing the CPU with it; the readiness
    probes keep the traffic on the old pods until the new ones answer. The build gate
    is recorded as passed so far (the later stages may run) and completed (and printed)
    after the deploy; when the smoke test fails, the images that were deployed before
    are deployed again and `inv up` stops with the build gate's failure."""

    def __init__(self, loaded, ahead: Prefetch | None = None) -> None:  # type: ignore[no-untyped-def]
        self.loaded = loaded
        self.ahead = ahead
        self.result = None
        self.previous: dict = {}

    def build(self, gordon: bool) -> None:
        from todo_deploy.artifacts import load_images
        from todo_deploy.cli import finish, guard
        from todo_deploy.console import say
        from todo_deploy.pipeline import record
        from todo_deploy.stages import build as stage

        guard(self.loaded, "build", force=False)
        self.previous = load_images(self.loaded.state_dir)
        result = stage.run(self.loaded, gordon=gordon, smoke=False,
                           on_planned=self.ahead.planned_image if self.ahead else None)
        details = stage.BuildDetails.of(result)
        if not details.smoke_pending or not result.passed:
            details.smoke_pending = []
            result.details = details.as_dict()
            finish(self.loaded, result)
            return
        self.result = result
        record(self.loaded, result)
        say(f"build: the smoke test of {', '.join(details.smoke_pending)} runs once the rollout is done "
            "(readiness keeps the traffic on the old pods until the new ones answer)")

    def finish(self, redeploy: Callable[[], object], deployed: bool) -> None:
        from todo_deploy.artifacts import save_images
        from todo_deploy.cli import finish
        from todo_deploy.console import say
        from todo_deploy.stages import build as stage

        result, self.result = self.result, None
        if result is None:
            return
        stage.smoke_tests(self.loaded, result)
        if result.passed or not deployed:
            finish(self.loaded, result)
            return
        say("build: the new image failed its smoke test; deploying the previous images again")
        if self.previous:
            save_images(self.loaded.state_dir, self.previous)
            try:
                redeploy()
            except Exit as exc:
                say(f"the previous images did not deploy either: {exc.message}")
        finish(self.loaded, result)  # records and prints the failed gate, raises Exit


def _new_code_serving(loaded, previous: dict) -> None:  # type: ignore[no-untyped-def]
    """After a rollout of new images: "serving" once the frontend, as a user reaches it,
    answers with their code (todo_deploy.access.serving), not when the rollout ends."""
    from todo_deploy.access import serving
    from todo_deploy.artifacts import load_images
    from todo_deploy.console import say
    from todo_deploy.kube import Kube

    current = load_images(loaded.state_dir)
    rebuilt = {name: image for name, image in current.items()
               if name not in previous or previous[name].image_id != image.image_id}
    if not rebuilt:
        return
    started = time.monotonic()
    why = serving.new_code_served(loaded.settings, Kube(loaded.settings.context_name), rebuilt)
    if why:
        raise Exit(f"the rollout finished but the frontend did not answer with the new code within "
                   f"{serving.TIMEOUT_S:g} s: {why}", code=1)
    say(f"deploy: {', '.join(sorted(rebuilt))} new code serving through the frontend "
        f"{time.monotonic() - started:.1f} s after the rollout")


def _provider_or_exit(loaded) -> None:  # type: ignore[no-untyped-def]
    """Stop before any build when the cluster provider's binary is missing: the builds
    would take minutes only for the cluster stage to fail on it."""
    import shutil

    from todo_deploy.gates import STAGES
    from todo_deploy.stages.cluster import missing_provider

    missing = missing_provider(loaded.settings, shutil.which)
    if missing is None:
        return
    info = STAGES["cluster"]  # said once, in the message: no gate table to repeat it
    raise Exit(
        f"inv up stopped before the build: stage {info.number}/{len(STAGES)} ({info.title}) "
        f"cannot run: {missing.evidence}.\nFix: {missing.fix}",
        code=1,
    )


def _announce(loaded) -> None:  # type: ignore[no-untyped-def]
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


def _same_deployment_fully_verified(loaded) -> bool:  # type: ignore[no-untyped-def]
    """Did the verify gate that stands for this deployment run every check, on these very
    objects (not a namesake made again after `inv down`)?"""
    from todo_deploy.cli import scopes
    from todo_deploy.gates import standing
    from todo_deploy.kube import Kube, KubeError
    from todo_deploy.stages.verify.stage import VerifyDetails, live_identity

    previous, _ = standing(loaded.state_dir, "verify", scopes(loaded)["verify"])
    details = VerifyDetails.of(previous)
    if previous is None or not previous.passed or not details.full:
        return False
    try:
        live = live_identity(Kube(loaded.settings.context_name), loaded.settings)
    except KubeError:
        return False
    return bool(live) and details.live == live


def _summary(timings: list[tuple[str, float]]) -> None:
    from todo_deploy.console import say

    total = sum(seconds for _, seconds in timings)
    say("stage timings: " + ", ".join(f"{n} {s:.1f}s" for n, s in timings) + f" (total {total:.1f}s)")
