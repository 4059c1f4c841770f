"""Stage 4, `inv deploy --helm`: the chart, installed or upgraded with wait and
automatic rollback; Secrets are created through the API first (existingSecret).
Also `inv rollback` and `inv history`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from todo_deploy import helm
from todo_deploy.access import live_node_port
from todo_deploy.artifacts import load_images
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.chart.values import app_labels
from todo_deploy.console import say
from todo_deploy.doctor import explain
from todo_deploy.gate_details import HelmDetails
from todo_deploy.gates import Check, GateResult
from todo_deploy.helm import HelmResult, HelmUnavailable
from todo_deploy.kube import Kube, KubeError, ObjectRef, label_selector, switch
from todo_deploy.kube.switch import RolloutProgress
from todo_deploy.release import rollback as raw_rollback
from todo_deploy.release.checks import workload_checks
from todo_deploy.release.objects import (
    app_selector,
    ensure_namespace,
    ensure_secrets,
    helm_release_present,
    raw_selector,
)

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.helm import HelmEngine

STAGE = "helm"




def dry_run(loaded: LoadedSettings, log: Callable[[str], None] = say) -> list[dict[str, Any]]:
    """Render the chart (no cluster touched) and print each object's kind/name."""
    settings = loaded.settings
    images = load_images(loaded.state_dir) or chart_values.default_images()
    engine = helm.make_engine(settings, log)
    log(f"Helm engine: {engine.name}")
    objects = engine.template(
        chart_values.CHART_DIR, settings.release_name, settings.namespace,
        chart_values.helm_values(settings, images),
    )
    for obj in objects:
        hook = (obj.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook")
        suffix = f"  (hook: {hook})" if hook else ""
        log(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}{suffix}")
    log(f"{len(objects)} objects rendered; nothing applied (--dry-run)")
    return objects


def adopt_raw_objects(
    kube: Kube, settings: Settings, engine: HelmEngine, values: dict[str, Any],
    log: Callable[[str], None],
) -> list[str]:
    """Before a Helm deploy over a raw one: mark the live raw objects so that Helm adopts
    them (todo_deploy/kube/switch.py); none is deleted, so the app keeps serving. The database
    StatefulSet gets the chart's pod template now, without restarting its pod."""
    live = kube.list_owned(settings.namespace, raw_selector(settings))
    if not live:
        return []
    target = kube.capabilities()  # the API versions Helm's install will render for
    rendered = [o for o in engine.template(chart_values.CHART_DIR, settings.release_name,
                                           settings.namespace, values,
                                           kube_version=target.kube_version,
                                           api_versions=target.api_versions)
                if not manifests.is_hook(o)]
    adopt = switch.to_adopt(live, rendered)
    log(f"helm: adopting {len(adopt)} live objects of {settings.release_name} "
        "(switching from raw manifests; nothing is deleted)")
    marks = switch.helm_marks(settings.release_name, settings.namespace)
    by_key = {switch.ident(o): o for o in rendered}
    for sts in (o for o in adopt if o["kind"] == "StatefulSet"):
        chart_sts = by_key[switch.ident(sts)]
        meta = chart_sts["metadata"]
        chart_sts = {**chart_sts, "metadata": {
            **meta, "annotations": {**(meta.get("annotations") or {}), **marks["annotations"]}}}
        switch.apply_keeping_pods(kube, chart_sts, {switch.MANAGED_BY: switch.HELM_MANAGED_BY},
                                  kube.apply, log)
    switch.mark(kube, [o for o in adopt if o["kind"] != "StatefulSet"], marks)
    switch.delete_leftovers(kube, switch.leftovers(live, rendered), log)
    return [str(ObjectRef.of(o)) for o in adopt]


def migration_check(kube: Kube, settings: Settings) -> Check:
    selector = label_selector({**app_labels(settings), "app.kubernetes.io/component": "migration"})
    jobs = kube.list("batch/v1", "Job", settings.namespace, selector)
    if not jobs:
        return Check.of(
            "migration Job succeeded", True,
            "no migration Job left: it ran as a hook and was deleted on success (release deployed)",
        )
    jobs.sort(key=lambda j: j["metadata"].get("creationTimestamp", ""))
    job = jobs[-1]
    ok = job.get("status", {}).get("succeeded", 0) >= 1
    return Check.of(
        "migration Job succeeded", ok, f"Job {job['metadata']['name']}: succeeded={job.get('status', {}).get('succeeded', 0)}",
        f"`kubectl -n {settings.namespace} logs job/{job['metadata']['name']}`",
    )


def _prepare(
    kube: Kube, engine: HelmEngine, settings: Settings, images: dict[str, ImageRef],
    details: HelmDetails, log: Callable[[str], None],
) -> dict[str, Any]:
    """The chart's values (dev.enabled when `details.dev`); the Namespace and Secrets made
    through the API first, and the raw deploy's live objects marked for Helm to adopt."""
    log(f"Helm engine: {engine.name}")
    details.engine = engine.name
    node_port = live_node_port(kube, settings)  # kept when the raw Service goes
    values = chart_values.helm_values(settings, images, node_port, details.dev)
    ensure_namespace(kube, settings, [])
    secret_names = ensure_secrets(kube, settings)
    log(f"Secrets created/updated through the API: {', '.join(secret_names)}")
    details.adopted_raw_objects = adopt_raw_objects(kube, settings, engine, values, log)
    return values


def _failed_upgrade(
    kube: Kube, engine: HelmEngine, settings: Settings, outcome: HelmResult,
    before: dict[str, Any] | None, details: HelmDetails, log: Callable[[str], None],
) -> Check:
    """Diagnose the failing pods while they exist, then roll an upgrade back."""
    release, namespace = settings.release_name, settings.namespace
    explanation = explain(kube, settings, namespace, app_selector(settings))
    log(outcome.message)
    log(explanation)
    if before and before.get("status") == "deployed":
        log(f"rolling {release} back to revision {before['revision']}")
        log(engine.rollback(release, namespace, before["revision"]).message)
    current = engine.status(release, namespace)
    now = (f"release is now revision {current['revision']} ({current['status']})"
           if current else "release not installed")
    details.diagnosis = explanation
    return Check.of(
        "helm upgrade --install", False, f"{outcome.message}; rolled back: {now}",
        "read the diagnosis printed above; fix it and re-run `inv deploy --helm`",
    )


def _release_checks(
    kube: Kube, engine: HelmEngine, settings: Settings, images: dict[str, ImageRef],
    timeout: int, began: datetime, details: HelmDetails,
) -> list[Check]:
    """The installed release: its status, `helm test`, the migration and the workloads."""
    release, namespace = settings.release_name, settings.namespace
    status = engine.status(release, namespace) or {}
    checks = [Check.of(
        "release status deployed", status.get("status") == "deployed",
        f"{release} revision {status.get('revision')}: {status.get('status')}",
        "`inv history` shows what happened",
    )]
    test_ok, test_out = engine.test(release, namespace, timeout_s=timeout)
    details.helm_test = test_out[-2000:]
    checks.append(Check.of(
        "helm test passed", test_ok, test_out.splitlines()[0] if test_out else "",
        "read the test pod's logs (printed by `helm test --logs`)",
    ))
    checks.append(migration_check(kube, settings))
    checks.extend(workload_checks(kube, namespace, app_selector(settings), images, since=began))
    return checks


def run(
    loaded: LoadedSettings,
    *,
    kube: Kube | None = None,
    engine: HelmEngine | None = None,
    timeout_s: int | None = None,
    log: Callable[[str], None] = say,
    dev: bool = False,
) -> GateResult:
    """`dev`: the chart's dev.enabled (live update, issue 24); off replaces dev pods."""
    settings = loaded.settings
    release, namespace = settings.release_name, settings.namespace
    result = GateResult(STAGE)
    details = HelmDetails(namespace=namespace, release=release, dev=dev)
    images = load_images(loaded.state_dir)
    started, began = time.monotonic(), datetime.now(UTC)
    timeout = timeout_s or settings.deploy_timeout_seconds
    try:
        if not images:
            result.checks.append(Check.of("build recorded", False, "no .state/images.json",
                                          "run `inv build` first"))
            return result
        kube = kube or Kube(settings.context_name)
        engine = engine or helm.make_engine(settings, log)
        values = _prepare(kube, engine, settings, images, details, log)
        before = engine.status(release, namespace)
        # An upgrade is rolled back by us right after the diagnosis, so that the failing
        # pods can still be examined; a first install is removed by Helm itself.
        upgrading = bool(before and before.get("status") == "deployed")
        with RolloutProgress(kube, namespace, app_selector(settings), log):
            # Never when adopting: a failed install is uninstalled, which would delete the
            # live objects the app was serving with.
            outcome: HelmResult = engine.upgrade_install(
                release, chart_values.CHART_DIR, namespace, values, wait=True, timeout_s=timeout,
                rollback_on_failure=not upgrading and not details.adopted_raw_objects,
            )
        elapsed = time.monotonic() - started
        details.duration_s, details.revision = round(elapsed, 2), outcome.revision
        if not outcome.ok:
            result.checks.append(_failed_upgrade(kube, engine, settings, outcome, before,
                                                 details, log))
            return result
        result.checks.append(Check.of(
            "helm upgrade --install", True, f"{outcome.message} in {elapsed:.1f}s ({engine.name})"))
        result.checks.extend(_release_checks(kube, engine, settings, images, timeout, began,
                                             details))
    except (KubeError, HelmUnavailable) as exc:
        result.checks.append(Check.of("cluster reachable", False, str(exc), "run `inv cluster`"))
    finally:
        result.details = details.as_dict()
    return result


def history(loaded: LoadedSettings, engine: HelmEngine | None = None) -> list[dict[str, Any]]:
    """The release's revisions, oldest first, each with its description.
    Raises HelmUnavailable (one line) when Helm cannot reach the cluster."""
    settings = loaded.settings
    engine = engine or helm.make_engine(settings, say)
    return engine.history(settings.release_name, settings.namespace)


GOOD = ("superseded", "deployed")  # revisions that were running once; "failed" ones were not


def rollback_target(
    entries: list[dict[str, Any]], revision: int | None, release: str, namespace: str
) -> tuple[int | None, str]:
    """(the revision to return to, '') or (None, why there is nothing to roll back to).

    Without a revision: the newest earlier revision that once ran (Helm's own
    default, current-1, may be the failed upgrade that is being undone)."""
    if not entries:
        return None, f"no Helm release {release} in namespace {namespace}: nothing to roll back"
    current = entries[-1]["revision"]
    revisions = [e["revision"] for e in entries]
    if revision is None:
        earlier = [e for e in entries[:-1] if e["status"] in GOOD]
        if len(entries) == 1:
            return None, (f"{release} has only revision {current}: there is no earlier "
                          "revision to roll back to")
        if not earlier:
            return None, (f"{release} has no earlier revision that ran successfully "
                          f"(revisions {', '.join(map(str, revisions))}, see `inv history`): "
                          "nothing to roll back to")
        return earlier[-1]["revision"], ""
    if revision == current:
        return None, f"revision {revision} is the current revision of {release}: nothing to roll back"
    if revision not in revisions:
        return None, (f"{release} has no revision {revision}; its revisions are "
                      f"{', '.join(map(str, revisions))} (see `inv history`)")
    return revision, ""


def rollback(
    loaded: LoadedSettings, revision: int | None = None, engine: HelmEngine | None = None
) -> HelmResult:
    """Roll back to `revision` (default: the newest earlier one that ran), or say
    plainly why there is nothing to roll back to. Raises HelmUnavailable."""
    settings = loaded.settings
    engine = engine or helm.make_engine(settings, say)
    release, namespace = settings.release_name, settings.namespace
    entries = engine.history(release, namespace)
    target, why = rollback_target(entries, revision, release, namespace)
    if target is None:
        current = entries[-1] if entries else {}
        return HelmResult(False, why, current.get("revision"), current.get("status", ""))
    return engine.rollback(release, namespace, target)


def rollback_any(
    loaded: LoadedSettings, revision: int | None = None, log: Callable[[str], None] = say
) -> tuple[bool, str]:
    """`inv rollback`: the Helm release when one is installed here, else the raw deploy
    (back to the previous passing one). (ok, what happened or why nothing could)."""

    settings = loaded.settings
    kube: Kube | None = None
    try:
        kube = Kube(settings.context_name)
        on_helm = helm_release_present(kube, settings)
    except Exception:  # noqa: BLE001 - no cluster: Helm's own read says so, in one line
        on_helm = True
    if on_helm or kube is None:
        outcome = rollback(loaded, revision)
        return outcome.ok, outcome.message
    if revision is not None:
        return False, (f"no Helm release {settings.release_name} in {settings.namespace}: "
                       "a raw deploy rolls back to the previous passing deploy only "
                       "(run `inv rollback` without --revision)")
    raw = raw_rollback.rollback(loaded, kube=kube, log=log)
    return raw.ok, raw.message
