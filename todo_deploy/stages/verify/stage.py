"""Stage 6, `inv verify`: a person's journey through the deployed frontend, plus
isolation, readiness, restarts, image identity, Pod Security, self-healing and
persistence, read from the live cluster. Returns the "verify" GateResult.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from todo_deploy import doctor
from todo_deploy.access import open_access
from todo_deploy.artifacts import load_images
from todo_deploy.console import say
from todo_deploy.gate_details import VerifyDetails
from todo_deploy.gates import (
    Check,
    GateResult,
    Verdict,
    current_deployment,
    fingerprint,
    scopes_for,
)
from todo_deploy.kube import Kube, KubeError, exec_in_pod
from todo_deploy.stages.verify.checks import (
    USERNAME_RE,
    VerifyContext,
    component_of,
    pod_ready,
    run_checks,
    select_checks,
)
from todo_deploy.stages.verify.client import wait_until_up
from todo_deploy.tools.commands import Runner

if TYPE_CHECKING:
    from todo_deploy.access import Access
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.doctor import Finding, Snapshot

STAGE = "verify"


# A failed verify leads with the doctor's cause; the failed checks are its knock-on effects.
CAUSE = "cause"
KNOCK_ON = "knock-on of the cause: "
FOLLOWS = ". The {count} failed check(s) below follow from it"


def cause_headline(evidence: str) -> str:
    """The cause row's evidence without its pointer to the rows below it."""
    return evidence.rpartition(FOLLOWS.split("{", 1)[0])[0] or evidence
# The checks that delete pods: `inv up` skips them when the same deployment already passed them.
DISRUPTIVE_CHECKS = ("self-healing", "persistence")

def cleanup_command(python: str, names: list[str]) -> list[str]:
    """The backend's own clean-up (`python -m todo_api delete-users`): it deletes the named users
    and what they own through the app's models, with its own DATABASE_URL (bundled or external
    database), and prints the count last. Which names go is `remove`'s rule (verify-* only)."""
    return [python, "-m", "todo_api", "delete-users", *names]


def user_remover(settings: Settings, kube: Kube) -> Callable[[list[str]], str]:
    """Deletes the verify users (and their tasks, conversations, messages) by exec into
    a Ready backend pod: no admin endpoint, no extra pod, works with either database."""
    def remove(names: list[str]) -> str:
        names = [n for n in names if USERNAME_RE.match(n)]
        if not names:
            return "no verify users to remove"
        pods = [
            p
            for p in kube.list("v1", "Pod", settings.namespace)
            if component_of(settings, p) == "backend"
            and pod_ready(p)
            and not p["metadata"].get("deletionTimestamp")
        ]
        if not pods:
            raise RuntimeError("no Ready backend pod to run the cleanup in")
        pod = pods[0]
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = "backend" if "backend" in containers else containers[0]
        last = ""
        for python in ("python", "python3"):
            # A client of its own: the self-healing load thread keeps using `kube`'s.
            code, out, err = exec_in_pod(
                Kube(kube.context).api,
                settings.namespace,
                pod["metadata"]["name"],
                container,
                cleanup_command(python, names),
            )
            if code == 0:
                count = out.strip().splitlines()[-1] if out.strip() else "?"
                return (
                    f"removed {count} user(s) {', '.join(names)} with their conversations "
                    f"(exec in {pod['metadata']['name']})"
                )
            last = ((err or out).strip().splitlines()[-1:] or [f"exit code {code}"])[0]
        raise RuntimeError(f"cleanup exec failed: {last}")

    return remove


def deployed_at(loaded: LoadedSettings) -> datetime | None:
    """When the deployment verify examines was made (its deploy/helm gate), if recorded."""
    scope = scopes_for(loaded.settings)["deploy"]
    gate = current_deployment(loaded.state_dir, scope)
    return datetime.fromisoformat(gate.finished_at) if gate else None


def run(
    loaded: LoadedSettings,
    *,
    only: str | None = None,
    skip: str | None = None,
    access: str = "auto",
    kube: Kube | None = None,
    runner: Runner | None = None,
    log: Callable[[str], None] = say,
) -> GateResult:
    """Verify the deployed app end to end; raises SelectionError for unknown names."""
    settings = loaded.settings
    names = select_checks(only, skip)
    runner = runner or Runner(log=log, secrets=settings.secret_values())
    started = time.monotonic()
    checks: list[Check] = []
    details = VerifyDetails(checks_selected=names)
    try:
        kube = kube or Kube(settings.context_name)
        with open_access(settings, kube, runner, mode=access) as way:
            _check_through(loaded, kube, way, names, checks, details, log)
    except (KubeError, RuntimeError, OSError) as exc:
        checks.append(
            Check.of(
                "access",
                False,
                f"{type(exc).__name__}: {exc}"[:400],
                "Check the kube context (`inv status`) and that `inv deploy` passed.",
            )
        )
    if kube is not None and any(c.verdict is Verdict.FAIL for c in checks):
        checks = lead_with_cause(checks, doctor_findings(kube, settings, loaded))
    details.full = set(DISRUPTIVE_CHECKS) <= set(names)
    if kube is not None:
        try:
            details.live = live_identity(kube, settings)
        except KubeError:
            details.live = ""
    details.duration_s = round(time.monotonic() - started, 1)
    details.counts = {v.value: sum(c.verdict is v for c in checks) for v in Verdict}
    return GateResult(STAGE, checks, details=details.as_dict())


def _check_through(loaded: LoadedSettings, kube: Kube, way: Access, names: list[str],
                   checks: list[Check], details: VerifyDetails, log: Callable[[str], None]) -> None:
    """Append the access check, then (when the frontend answers) the checks `names` run
    through `way`; records the access and the test users in `details`. Appends as it goes:
    when a check raises, those before it stay in `checks`."""
    settings = loaded.settings
    details.access = {"kind": way.kind, "url": way.url, "detail": way.plan.detail}
    log(f"verify: reaching the frontend via {way.describe()}")
    up, how = wait_until_up(way.url, deadline_s=30, host=way.plan.host)
    checks.append(
        Check.of(
            "access",
            up,
            f"{way.describe()}: {how}",
            "The frontend Service does not answer: `inv status`, then `kubectl get "
            f"svc,pods -n {settings.namespace}`.",
        )
    )
    if up:
        ctx = VerifyContext(
            settings,
            way.url,
            kube=kube,
            images=load_images(loaded.state_dir),
            log=log,
            remove_users=user_remover(settings, kube),
            restarts_since=deployed_at(loaded),
            host=way.plan.host,
        )
        try:
            checks.extend(run_checks(ctx, names))
        finally:
            ctx.close()
            details.test_users = [ctx.username(label) for label in ctx.clients]
    if way.forwarder is not None:
        details.access["port_forward_connections"] = way.forwarder.connections


def doctor_findings(
    kube: Kube, settings: Settings, loaded: LoadedSettings,
    collect: Callable[[Kube, str], Snapshot] | None = None,
) -> list[Finding]:
    """The built-in doctor's findings about the namespace, causes first ([] when it
    cannot read it: the failed checks then speak for themselves)."""
    try:
        snapshot = (collect or doctor.collect)(kube, settings.namespace)
    except (KubeError, doctor.NamespaceMissing):
        return []
    return doctor.diagnose(snapshot, doctor.Target.of(settings), load_images(loaded.state_dir))


def lead_with_cause(checks: list[Check], findings: list[Finding]) -> list[Check]:
    """When the doctor names a cause, it leads (with its fix) and the failed checks are
    folded under it as its knock-on effects: one thing to fix, not nine."""
    failed = [c for c in checks if c.verdict is Verdict.FAIL]
    if not failed or not findings:
        return checks
    cause, others = findings[0], findings[1:]
    evidence = f"the doctor: {cause.headline}"
    if others:
        evidence += " (also: " + "; ".join(f"{f.kind}: {f.object}" for f in others) + ")"
    evidence += FOLLOWS.format(count=len(failed))
    folded = [replace(c, evidence=KNOCK_ON + c.evidence, fix="") if c.verdict is Verdict.FAIL
              else c for c in checks]
    return [Check(CAUSE, Verdict.FAIL, evidence, cause.fix), *folded]


def live_identity(kube: Kube, settings: Settings) -> str:
    """Which objects are deployed now: the namespace's and the workloads' UIDs, hashed.

    A deployment removed and made again (`inv down` then `inv up`) has new UIDs
    even when nothing in the settings or images changed.
    """
    namespace = kube.get("v1", "Namespace", settings.namespace)
    parts = [str(((namespace or {}).get("metadata") or {}).get("uid", ""))]
    for api_version, kind in (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet")):
        for obj in kube.list(api_version, kind, settings.namespace):
            meta = obj.get("metadata") or {}
            parts.append(f"{kind}/{meta.get('name')}={meta.get('uid')}")
    return fingerprint(*sorted(parts))
