"""The conductor: every front door (the `inv` tasks, the MCP server, `inv watch`) runs
the stages through here, as Skaffold's runner composes its builder, deployer and tester
for `run` and `dev` alike.

One stage: guard (a predecessor's gate passed, else the refusal) -> run (the stage
module from the registry) -> record (`pipeline.record`) -> render (the gate table, and
a non-zero exit when it failed): `run_stage`. The MCP server takes the same guard and
record without the rendering: `run_recorded`.

`inv up` (`up`): every stage in the registry's order, with its policies: `--until`, the
wrong-cluster guard and the provider check before anything is built, the prefetch of
the deploy's render while the engine builds, a new image's smoke test after its rollout,
the "already verified, skip the disruptive checks" shortcut, and the stage timings.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit

from todo_deploy.access import serving
from todo_deploy.artifacts import load_images, save_images
from todo_deploy.config.profiles import context_refusal
from todo_deploy.console import render_gate, say
from todo_deploy.gate_details import BuildDetails, DocsDetails, VerifyDetails
from todo_deploy.gates import STAGES, GateResult, scopes_for, standing
from todo_deploy.gates import refusal as gate_refusal
from todo_deploy.kube import Kube, KubeError
from todo_deploy.pipeline import record
from todo_deploy.pipeline.failures import in_one_line
from todo_deploy.pipeline.prefetch import Prefetch
from todo_deploy.pipeline.registry import Step, stage_module, steps

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings


# ---- one stage: guard -> run -> record -> render ----------------------------------------------


def scopes(loaded: LoadedSettings) -> dict[str, str]:
    """stage -> what its gate describes under the current settings."""
    return scopes_for(loaded.settings)


def refusal(loaded: LoadedSettings, stage: str) -> str | None:
    """Why `stage` may not run yet under these settings, or None."""
    return gate_refusal(loaded.state_dir, stage, scopes(loaded))


def guard(loaded: LoadedSettings, stage: str, force: bool) -> None:
    """Refuse to run `stage` unless a predecessor's gate passed (or --force)."""
    reason = refusal(loaded, stage)
    if reason is None:
        return
    if force:
        say(f"--force: running anyway. {reason}")
        return
    raise Exit(reason + " (or pass --force to run anyway)", code=1)


def context_guard(loaded: LoadedSettings, force: bool) -> None:
    """Refuse to deploy a profile's settings to another cluster, or other settings to a
    profile's cluster (todo_deploy/config/profiles.py), unless --force."""
    reason = context_refusal(loaded)
    if reason is None:
        return
    if force:
        say(f"--force: deploying anyway. {reason}")
        return
    raise Exit(f"refusing to deploy: {reason}", code=1)


def finish(loaded: LoadedSettings, result: GateResult) -> GateResult:
    """Record and render a gate result; exit non-zero when it failed."""
    record(loaded, result)
    render_gate(result)
    if not result.passed:
        names = ", ".join(c.name for c in result.failures)
        raise Exit(f"{result.stage} gate failed: {names}", code=1)
    return result


def run_stage(
    loaded: LoadedSettings, stage: str, *, force: bool = False, guarded: bool = True,
    before_render: Callable[[GateResult], object] | None = None, **options: Any,
) -> GateResult:
    """Guard, run, record and render one stage; `options` go to its `run`."""
    if guarded:
        guard(loaded, stage, force)
    result = stage_module(stage).run(loaded, **options)
    if before_render is not None:
        before_render(result)
    return finish(loaded, result)


def run_recorded(
    loaded: LoadedSettings, stage: str, refused: Callable[[str], Exception], **options: Any
) -> GateResult:
    """Guard, run and record one stage, rendering nothing (the MCP server returns the
    gate); a refusal raises `refused(reason)`."""
    reason = refusal(loaded, stage)
    if reason is not None:
        raise refused(reason)
    return run_and_record(loaded, stage, **options)


def run_and_record(loaded: LoadedSettings, stage: str, **options: Any) -> GateResult:
    """Run and record one stage, unguarded and unrendered (`inv watch` guarded once,
    before its first change, and prints its own lines)."""
    return record(loaded, stage_module(stage).run(loaded, **options))


def run_aiops(loaded: LoadedSettings, playbook: str, **options: Any) -> GateResult:
    """Stage 5, unguarded: the doctor is for exactly the moment a deploy failed."""
    stage = stage_module("aiops")
    try:
        return run_stage(loaded, "aiops", guarded=False, before_render=stage.render_findings,
                         playbook=playbook, **options)
    except stage.PlaybookRefused as exc:
        raise Exit(f"inv aiops refuses: {exc}", code=1) from None


def run_verify(loaded: LoadedSettings, *, force: bool = False, **options: Any) -> GateResult:
    """Stage 6; a failure led by the doctor's one cause says it first."""
    guard(loaded, "verify", force)
    result = stage_module("verify").run(loaded, **options)
    try:
        return finish(loaded, result)
    except Exit as failed:
        raise Exit(verify_failure_message(result) or failed.message, code=failed.code) from None


def verify_failure_message(result: GateResult) -> str:
    """The one cause and its fix first, the failed checks it explains after ("" when
    the doctor named no cause)."""
    stage = stage_module("verify")
    cause = next((c for c in result.failures if c.name == stage.CAUSE), None)
    if cause is None:
        return ""
    knock_on = [c.name for c in result.failures if c is not cause]
    return (f"verify gate failed: {stage.cause_headline(cause.evidence)}\nFix: {cause.fix}\n"
            f"Failed because of it: {', '.join(knock_on)}")


def run_docs(loaded: LoadedSettings, *, force: bool = False) -> GateResult:
    """Stage 7; says where the report is before its gate."""

    def where(result: GateResult) -> None:
        report = DocsDetails.of(result).report
        if report:
            say(f"report: {report}")

    return run_stage(loaded, "docs", force=force, before_render=where)


def run_deploy(loaded: LoadedSettings, *, helm: bool, force: bool,
               timeout_s: int | None = None, dev: bool = False) -> GateResult:
    """Stage 3 (raw manifests) or 4 (the chart), after the wrong-cluster guard; `dev`
    renders the pods for live update (issue 24), a normal deploy without it."""
    context_guard(loaded, force)
    return run_stage(loaded, "helm" if helm else "deploy", force=force, timeout_s=timeout_s,
                     dev=dev)


# ---- `inv up` ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpOptions:
    helm: bool = False
    full: bool = False  # run the disruptive verify checks even if nothing changed
    gordon: bool = False
    until: str = ""  # stop after this stage ("" runs them all)
    force: bool = False
    # Deploy for live update (issue 24), then stop: verify refuses dev pods' image identity,
    # and `inv up --dev` goes on into `inv watch --dev`'s loop (cli/up.py).
    dev: bool = False


def up(loaded: LoadedSettings, options: UpOptions) -> bool:
    """Every stage in order, stopping at the first gate that fails (Exit); True when
    all ran (False: `--until` stopped earlier)."""
    until = dev_until(options)
    chosen = chosen_steps(options.helm, until)
    if until not in ("build", "cluster"):
        context_guard(loaded, options.force)
    if any(step.stage == "cluster" for step in chosen):
        provider_or_exit(loaded)
    # When this run deploys, a new image's smoke test runs after its rollout, and the
    # deploy's render and imports are done while the engine builds (pipeline/prefetch.py).
    deploys = until not in ("build", "cluster")
    ahead = Prefetch(loaded) if deploys and not options.helm else None
    beside = SmokeAfterRollout(loaded, ahead) if deploys else None
    runs = _stage_runs(loaded, options, ahead, beside)
    _run_in_order(chosen, runs, ahead, options.helm)
    if until and until != "docs":
        why = "--dev" if options.dev and not options.until else f"--until {until}"
        say(f"Stopped after {chosen[-1].title} ({why}); the later gates did not run.")
        return False
    return True


def dev_until(options: UpOptions) -> str:
    """Where `inv up` stops: `--until`, and with `--dev` the deploy at the latest (the
    later stages check the built images, which dev pods do not run once synced)."""
    if options.dev and options.helm:
        raise Exit("--dev deploys with the raw manifests (`inv watch`'s rebuilds do): drop --helm",
                   code=2)
    if not options.dev or options.until in ("build", "cluster", "deploy"):
        return options.until
    if options.until:
        raise Exit(f"--dev stops after the deploy (verify refuses dev pods' image identity): "
                   f"--until {options.until} cannot run with it", code=2)
    return "deploy"


def chosen_steps(helm: bool, until: str) -> list[Step]:
    """The steps `inv up` runs: all, or up to `until` (an unknown one exits 2)."""
    chosen = steps(helm)
    stops = [("deploy" if s.stage == "helm" else s.stage) for s in chosen]
    if until and until not in stops:
        raise Exit(f"--until must be one of {', '.join(stops)}, not {until!r}", code=2)
    return chosen[: stops.index(until) + 1] if until else chosen


def _stage_runs(
    loaded: LoadedSettings, options: UpOptions, ahead: Prefetch | None,
    beside: SmokeAfterRollout | None,
) -> dict[str, Callable[[], object]]:
    """stage -> what `inv up` runs for it."""

    def build() -> None:
        if beside is not None:
            beside.build(options.gordon)
        else:
            run_stage(loaded, "build", gordon=options.gordon)

    def cluster() -> None:
        if ahead is not None:
            ahead.wait()
        run_stage(loaded, "cluster")

    def deploy(helm: bool) -> None:
        def again() -> GateResult:
            return run_deploy(loaded, helm=helm, force=options.force, dev=options.dev)

        deployed = False
        try:
            again()
            deployed = True
            new_code_serving(loaded, beside.previous if beside is not None else {})
        finally:
            if beside is not None:
                beside.finish(again, deployed)

    def verify() -> None:
        disruptive = stage_module("verify").DISRUPTIVE_CHECKS
        same = not options.full and same_deployment_fully_verified(loaded)
        if same:
            say("verify: this deployment (same objects, settings and images) already passed "
                f"the checks that delete pods ({', '.join(disruptive)}); skipping them. "
                "`inv up --full` runs them.")
        run_verify(loaded, only=None, skip=",".join(disruptive) if same else None,
                   access="auto")

    return {
        "build": build,
        "cluster": cluster,
        "deploy": lambda: deploy(False),
        "helm": lambda: deploy(True),
        "aiops": lambda: run_aiops(loaded, "doctor"),
        "verify": verify,
        "docs": lambda: run_docs(loaded),
    }


def _run_in_order(chosen: list[Step], runs: dict[str, Callable[[], object]],
                  ahead: Prefetch | None, helm: bool) -> None:
    """Each step with its heading and timing; the first failed gate stops them all."""
    total = len(STAGES)
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
            in_one_line(runs[step.stage])  # as each task says it when run alone
        except Exit as exc:
            if ahead is not None:
                ahead.wait()  # not left writing the render cache as the process exits
            timings.append((step.title, time.monotonic() - started))
            summary(timings)
            raise Exit(
                f"inv up stopped at stage {step.number}/{total} ({step.title}): "
                f"{exc.message or 'its gate failed'}\n"
                "Fix what the gate names above, then run `inv up` again.",
                code=exc.code or 1,
            ) from None
        timings.append((step.title, time.monotonic() - started))
    summary(timings)


def summary(timings: list[tuple[str, float]]) -> None:
    total = sum(seconds for _, seconds in timings)
    say("stage timings: " + ", ".join(f"{n} {s:.1f}s" for n, s in timings) + f" (total {total:.1f}s)")


class SmokeAfterRollout:
    """`inv up`'s build when the same run deploys: a new image's smoke test (the build
    gate's healthy/endpoint/non-root/cleanup checks) runs once the rollout is done, so
    the new pods serve without waiting for it or sharing the CPU with it; the readiness
    probes keep the traffic on the old pods until the new ones answer. The build gate
    is recorded as passed so far (the later stages may run) and completed (and printed)
    after the deploy; when the smoke test fails, the images that were deployed before
    are deployed again and `inv up` stops with the build gate's failure."""

    def __init__(self, loaded: LoadedSettings, ahead: Prefetch | None = None) -> None:
        self.loaded = loaded
        self.ahead = ahead
        self.result: GateResult | None = None
        self.previous: dict[str, ImageRef] = {}

    def build(self, gordon: bool) -> None:
        stage = stage_module("build")
        guard(self.loaded, "build", force=False)
        self.previous = load_images(self.loaded.state_dir)
        result = stage.run(self.loaded, gordon=gordon, smoke=False,
                           on_planned=self.ahead.planned_image if self.ahead else None)
        details = BuildDetails.of(result)
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
        result, self.result = self.result, None
        if result is None:
            return
        stage_module("build").smoke_tests(self.loaded, result)
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


def new_code_serving(loaded: LoadedSettings, previous: dict[str, ImageRef]) -> None:
    """After a rollout of new images: "serving" once the frontend, as a user reaches it,
    answers with their code (todo_deploy.access.serving), not when the rollout ends."""
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


def provider_or_exit(loaded: LoadedSettings) -> None:
    """Stop before any build when the cluster provider's binary is missing: the builds
    would take minutes only for the cluster stage to fail on it."""
    missing = stage_module("cluster").missing_provider(loaded.settings, shutil.which)
    if missing is None:
        return
    info = STAGES["cluster"]  # said once, in the message: no gate table to repeat it
    raise Exit(
        f"inv up stopped before the build: stage {info.number}/{len(STAGES)} ({info.title}) "
        f"cannot run: {missing.evidence}.\nFix: {missing.fix}",
        code=1,
    )


def same_deployment_fully_verified(loaded: LoadedSettings) -> bool:
    """Did the verify gate that stands for this deployment run every check, on these very
    objects (not a namesake made again after `inv down`)?"""
    stage = stage_module("verify")
    previous, _ = standing(loaded.state_dir, "verify", scopes(loaded)["verify"])
    details = VerifyDetails.of(previous)
    if previous is None or not previous.passed or not details.full:
        return False
    try:
        live = stage.live_identity(Kube(loaded.settings.context_name), loaded.settings)
    except KubeError:
        return False
    return bool(live) and details.live == live
