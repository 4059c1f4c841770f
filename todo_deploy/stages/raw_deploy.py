"""Stage 3, `inv deploy`: the chart rendered in-process (todo_deploy/chart/manifests.py,
no Helm release), applied server-side in order.

Order: namespace, Secrets (from the settings, through the API only) and config,
database (then wait for it), the migration Job (then wait; its failure stops the
deploy before any Deployment changes), then Deployments/Services/NetworkPolicies,
prune what is no longer rendered (never PVCs), and wait for the rollout. Objects
of one step are applied in parallel.

What did not change is not applied (todo_deploy/kube/applied.py): an object whose
rendered manifest hashes as last applied and whose live resourceVersion is the one
recorded then (any write since, e.g. a `kubectl edit`, changes it) is skipped; so a
no-change deploy reads the live objects (one LIST per kind, in parallel), applies
nothing and waits for nothing. The migration Job is named after a hash of the
image's migrations and the database (chart_values.migration_key): when that Job already
succeeded, the migrations are at head and nothing is migrated or waited for.
Every step is timed in the output and in the gate (details.timings).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from todo_deploy.access import live_node_port
from todo_deploy.artifacts import load_images
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.console import say
from todo_deploy.doctor import explain
from todo_deploy.gate_details import DeployDetails
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.kube import (
    Kube,
    KubeError,
    ObjectRef,
    applied,
    job_state,
    switch,
    wait_for,
)
from todo_deploy.release import rollback as raw_rollback
from todo_deploy.release.checks import workload_checks
from todo_deploy.release.objects import (
    app_selector,
    helm_release_present,
    namespace_objects,
    parallel,
    raw_selector,
    secret_objects,
)
from todo_deploy.timing import Timeline

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings, Settings

STAGE = "deploy"


NEVER_PRUNE = frozenset({"PersistentVolumeClaim", "Pod"})
CONFIG_KINDS = frozenset({"ConfigMap", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim"})


class DeployError(Exception):
    """A step failed; the message explains it (diagnosis included)."""


def _component(obj: dict[str, Any]) -> str:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def phases(rendered: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"config": [], "database": [], "migration": [], "app": []}
    for obj in rendered:
        if obj["kind"] == "Namespace":
            continue
        component = _component(obj)
        if obj["kind"] == "Job" or component == "migration":
            out["migration"].append(obj)
        elif component == "database":
            out["database"].append(obj)
        elif obj["kind"] in CONFIG_KINDS:
            out["config"].append(obj)
        else:
            out["app"].append(obj)
    return out


def apply_one(kube: Kube, obj: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Server-side apply one object; a Job changed in its immutable template is replaced."""
    ref = ObjectRef.of(obj)
    try:
        return kube.apply(obj)
    except KubeError as exc:
        if ref.kind == "Job" and exc.status == 422:
            log(f"{ref} changed in an immutable field: replacing it")
            kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            kube.wait_deleted([ref], timeout=60)
            return kube.apply(obj)
        raise DeployError(f"applying {ref} failed: {exc}") from None


def apply_all(
    kube: Kube, objects: list[dict[str, Any]], live: dict[str, str], log: Callable[[str], None]
) -> list[str]:
    """Apply the objects in parallel; returns those the API changed (a new resourceVersion)."""
    answers = parallel(lambda obj: apply_one(kube, obj, log), objects)
    return [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj, after in zip(objects, answers, strict=True)
        if after["metadata"].get("resourceVersion") != live.get(applied.key_of(obj))
    ]


def live_objects(
    kube: Kube, settings: Settings, kinds: dict[str, str], namespaces: list[str]
) -> dict[str, dict[str, Any]]:
    """Applied-object key -> the live object: one LIST per kind (kind -> apiVersion)
    with this app's raw selector, and a GET per Namespace, all in parallel."""
    selector = raw_selector(settings)
    lists = [(api_version, kind) for kind, api_version in sorted(kinds.items())]

    def read(work: tuple[str, str, str]) -> list[dict[str, Any]]:
        api_version, kind, name = work
        if name:
            found = kube.get(api_version, kind, name)
            return [{**found, "kind": kind}] if found else []
        return kube.list(api_version, kind, settings.namespace, selector)

    work = [(v, k, "") for v, k in lists] + [("v1", "Namespace", n) for n in namespaces]
    return {applied.key_of(item): item for items in parallel(read, work) for item in items}


def prune(
    kube: Kube,
    settings: Settings,
    keep: list[dict[str, Any]],
    log: Callable[[str], None],
    candidates: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Delete this app's raw objects that are no longer rendered (never PVCs).

    `candidates`: the live objects to consider (already listed); default: list every
    kind an app release may own.
    """
    wanted = {ObjectRef.of(o).key for o in keep}
    if candidates is None:
        candidates = kube.list_owned(settings.namespace, raw_selector(settings))
    removed = []
    for obj in candidates:
        ref = ObjectRef.of(obj)
        if ref.kind in NEVER_PRUNE or ref.kind == "Namespace" or ref.key in wanted:
            continue
        log(f"pruning {ref} (no longer rendered)")
        propagation = "Background" if ref.kind == "Job" else "Foreground"
        if kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace, propagation):
            removed.append(str(ref))
    return removed


def _refs(objects: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[ObjectRef]:
    return [ObjectRef.of(o) for o in objects if o["kind"] in kinds]


def _wait_or_explain(
    kube: Kube, refs: list[ObjectRef], deadline: float, what: str, log: Callable[[str], None],
    settings: Settings,
) -> float:

    if not refs:
        return 0.0
    outcome = wait_for(kube, refs, max(1.0, deadline - time.monotonic()), log=log, what=what)
    if outcome.ok:
        if outcome.seconds > 0.5:
            log(f"{what}: done in {outcome.seconds:.1f}s")
        return outcome.seconds
    explanation = explain(kube, settings, settings.namespace, [s for _, s in outcome.failed_selectors])
    raise DeployError(f"{what} failed: {outcome.message}\n{explanation}")


def take_over_helm_release(
    kube: Kube, settings: Settings, every: list[dict[str, Any]], log: Callable[[str], None]
) -> None:
    """After the raw objects were applied over a Helm release's: drop Helm's marks from
    them, delete what only Helm made (its migration Job, test pods) and the release
    record. Nothing the app serves with is deleted (todo_deploy/kube/switch.py)."""
    helm_owned = kube.list_owned(settings.namespace, app_selector(settings))
    marked = [o for o in helm_owned
              if (o["metadata"].get("annotations") or {}).get(switch.RELEASE_NAME)]
    switch.mark(kube, [o for o in marked if o["kind"] not in switch.LEFTOVER_KINDS],
                switch.raw_marks(chart_values.MANAGED_BY))
    still_helm = [o for o in helm_owned if (o["metadata"].get("labels") or {}).get(
        switch.MANAGED_BY) == switch.HELM_MANAGED_BY]
    switch.delete_leftovers(kube, switch.leftovers(still_helm, every), log)
    switch.forget_release(kube, settings, log)




# ---- the stage --------------------------------------------------------------------------------


def run(
    loaded: LoadedSettings,
    *,
    kube: Kube | None = None,
    timeout_s: int | None = None,
    log: Callable[[str], None] = say,
) -> GateResult:

    settings = loaded.settings
    started, began = time.monotonic(), datetime.now(UTC)
    timeline = Timeline(log, prefix="deploy ")
    phase = timeline.phase
    result = GateResult(STAGE)
    details = DeployDetails(namespace=settings.namespace, release=settings.release_name)
    images = load_images(loaded.state_dir)
    if not images:
        result.checks.append(Check.of(
            "build recorded", False, "no .state/images.json", "run `inv build` first"))
        result.details = details.as_dict()
        return result
    details.images = {k: v.ref for k, v in images.items()}
    deadline = started + (timeout_s or settings.deploy_timeout_seconds)
    scope = applied.scope_of(settings)
    changed: list[str] = []
    pruned: list[str] = []
    skipped: list[str] = []
    waits: dict[str, float] = {}
    try:
        with phase("connect"):
            kube = kube or Kube(settings.context_name)
            node_port = live_node_port(kube, settings)  # kept when the Helm release goes
        with phase("render the chart"):
            rendered = manifests.render_manifests(settings, images, node_port,
                                                  cache_dir=loaded.state_dir,
                                                  capabilities=kube.capabilities())
        groups = phases(rendered)
        job_name = manifests.migration_job(rendered)
        namespaces = namespace_objects(settings, rendered)
        secrets = secret_objects(settings)
        every = namespaces + secrets + [o for o in rendered if o["kind"] != "Namespace"]
        recorded = applied.load(loaded.state_dir, scope)
        kinds = {o["kind"]: o["apiVersion"] for o in every if o["kind"] != "Namespace"}
        for key, entry in recorded.items():
            kinds.setdefault(key.split("/", 1)[0], entry.api_version)
        kinds.pop("Namespace", None)

        with phase("read the live objects"):
            helm_release, live = parallel(lambda read: read(), [
                lambda: helm_release_present(kube, settings),
                lambda: live_objects(kube, settings, kinds,
                                     [n["metadata"]["name"] for n in namespaces]),
            ])
        if helm_release:
            log(f"switching to raw manifests: taking over the live objects of Helm release "
                f"{settings.release_name} (server-side apply; nothing is deleted)")
            details.uninstalled_helm_release = True
            recorded, live = {}, {}
            applied.forget_renders(loaded.state_dir)
        versions = {key: obj["metadata"].get("resourceVersion", "") for key, obj in live.items()}

        def todo(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = [o for o in objects if not applied.unchanged(o, recorded, versions)]
            skipped.extend(f"{o['kind']}/{o['metadata']['name']}" for o in objects if o not in out)
            why = {applied.why_applied(o, recorded, versions) for o in out}
            if out and recorded:
                log(f"deploy: to apply: {', '.join(sorted(why))}")
            return out

        if work := todo(namespaces):
            with phase("apply namespace"):
                changed += apply_all(kube, work, versions, log)
        if work := todo(secrets + groups["config"]):
            with phase(f"apply Secrets and config ({len(work)})"):
                changed += apply_all(kube, work, versions, log)
        from todo_deploy.chart.ingress import ensure_tls_secret

        ensure_tls_secret(kube, settings)  # INGRESS_TLS=self-signed: made once per host
        jobs = [o for o in groups["migration"] if o["kind"] == "Job"]
        # The database and what the migration Job needs first (its NetworkPolicy).
        database = todo(groups["database"])
        before_job = todo([o for o in groups["migration"] if o["kind"] != "Job"])
        if database or before_job:
            with phase(f"apply database ({len(database + before_job)})"):
                if helm_release:
                    database = _apply_statefulsets_keeping_pods(kube, database, log)
                changed += apply_all(kube, database + before_job, versions, log)

        migrated = _migration_done(jobs, live, job_state)
        if migrated:
            skipped.extend(f"Job/{o['metadata']['name']}" for o in jobs)
            if any(not applied.unchanged(j, recorded, versions) for j in jobs):  # a new image
                log(f"migrations unchanged: Job {migrated} already succeeded for this image's "
                    "migrations and database; not run again")
        if database or (jobs and not migrated):
            with phase("wait database"):
                waits["database"] = _wait_or_explain(
                    kube, _refs(groups["database"], ("StatefulSet", "Deployment")), deadline,
                    "database ready", log, settings)
        if jobs and not migrated:
            with phase("apply migration Job"):
                _retry_failed_jobs(kube, jobs, live, job_state, log)
                changed += apply_all(kube, jobs, versions, log)
            with phase("wait migration Job"):
                waits["migration"] = _wait_or_explain(
                    kube, _refs(jobs, ("Job",)), deadline, "migration Job", log, settings)

        app = todo(groups["app"])
        if app:
            with phase(f"apply app ({len(app)})"):
                changed += apply_all(kube, app, versions, log)
        if helm_release:
            with phase("hand the Helm release over"):
                take_over_helm_release(kube, settings, every, log)
        keep = every
        if recorded:
            # The live lists cover every kind applied before: whatever they hold that is
            # no longer rendered is what to prune (no further requests).
            leftovers = [o for o in live.values() if applied.key_of(o) not in
                         {applied.key_of(k) for k in keep}]
            if leftovers:
                with phase("prune"):
                    pruned = prune(kube, settings, keep, log, candidates=leftovers)
        else:
            with phase("prune (every kind: no record of the last deploy)"):
                pruned = prune(kube, settings, keep, log)
        rolling = _refs(app, ("Deployment", "StatefulSet"))
        if rolling:
            with phase("wait rollout"):
                waits["rollout"] = _wait_or_explain(kube, rolling, deadline, "rollout", log,
                                                    settings)
    except DeployError as exc:
        log(str(exc))
        restored = _restore_last_passing(kube, loaded, scope, deadline, log)
        details.rolled_back_to = restored.message if restored else ""
        evidence = str(exc).splitlines()[0] + (f"; {restored.message}" if restored else "")
        result.checks.append(Check.of(
            "deploy finished", False, evidence,
            "read the diagnosis printed above; fix it and re-run `inv deploy`",
        ))
        details.diagnosis = str(exc)
        details.timings = timeline.as_details()
        applied.forget(loaded.state_dir)
        result.details = details.as_dict()
        return result
    except KubeError as exc:
        result.checks.append(Check.of(
            "deploy finished", False, str(exc), "is the cluster up? run `inv cluster`"))
        details.timings = timeline.as_details()
        applied.forget(loaded.state_dir)
        result.details = details.as_dict()
        return result

    elapsed = time.monotonic() - started
    total = len(every)
    details.applied, details.unchanged = total - len(skipped), len(skipped)
    details.changed, details.pruned = changed, pruned
    details.timings_s = {k: round(v, 2) for k, v in waits.items()}
    details.duration_s = round(elapsed, 2)
    result.checks.append(Check(
        "objects applied (server-side, field manager todo-deploy)", Verdict.PASS,
        f"{total} objects ({len(secrets)} Secrets): {len(skipped)} unchanged since the last "
        f"deploy (skipped), {total - len(skipped)} applied, {len(changed)} changed; "
        f"pruned: {len(pruned)}; {elapsed:.1f}s",
    ))
    with phase("gate checks"):
        result.checks.extend(
            workload_checks(kube, settings.namespace, raw_selector(settings), images, job_name, since=began))
    if result.passed:
        with phase("record what was applied"):
            _record(kube, loaded, scope, settings, every, kinds, live, skipped)
            applied.remember_render(loaded.state_dir, scope, details.images, every)
    else:
        applied.forget(loaded.state_dir)
    details.timings = timeline.as_details()
    result.details = details.as_dict()
    return result


def _apply_statefulsets_keeping_pods(
    kube: Kube, objects: list[dict[str, Any]], log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Switching from Helm: the StatefulSets' pod templates change only in their
    managed-by label; applied without restarting the database pod (switch.py). The rest
    is returned, to apply as usual."""
    for sts in (o for o in objects if o["kind"] == "StatefulSet"):
        switch.apply_keeping_pods(kube, sts, {switch.MANAGED_BY: chart_values.MANAGED_BY}, kube.apply,
                                  log)
    return [o for o in objects if o["kind"] != "StatefulSet"]


def _restore_last_passing(
    kube: Kube | None, loaded: LoadedSettings, scope: str, deadline: float,
    log: Callable[[str], None],
) -> raw_rollback.Outcome | None:
    """A failed deploy: apply the last passing deploy's objects again (as Helm's
    rollback-on-failure does); its Outcome, or None when none is recorded."""
    renders = applied.passing_renders(loaded.state_dir, scope)
    if kube is None or not renders:
        return None
    outcome = raw_rollback.restore(kube, renders[-1], max(60.0, deadline - time.monotonic()), log)
    log(outcome.message)
    return outcome


def _migration_done(
    jobs: list[dict[str, Any]], live: dict[str, dict[str, Any]], job_state: Callable[..., Any]
) -> str:
    """The name of the rendered migration Job when it exists and succeeded, else ''.
    (Its pod template names the current image; a finished Job is never re-applied.)"""
    for job in jobs:
        found = live.get(applied.key_of(job))
        if found is None or not job_state(found).done:
            return ""
    return jobs[0]["metadata"]["name"] if jobs else ""


def _retry_failed_jobs(
    kube: Kube, jobs: list[dict[str, Any]], live: dict[str, dict[str, Any]],
    job_state: Callable[..., Any], log: Callable[[str], None],
) -> None:
    """A failed Job of the same name is deleted so that applying it runs it again."""
    for job in jobs:
        found = live.get(applied.key_of(job))
        if found is not None and job_state(found).failed:
            ref = ObjectRef.of(job)
            log(f"{ref} failed before ({job_state(found).failed}): running it again")
            kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            kube.wait_deleted([ref], timeout=60)


def _record(
    kube: Kube,
    loaded: LoadedSettings,
    scope: str,
    settings: Settings,
    every: list[dict[str, Any]],
    kinds: dict[str, str],
    live_before: dict[str, dict[str, Any]],
    skipped: list[str],
) -> None:
    """Keep each object's manifest hash and its resourceVersion now (after the rollout:
    the status updates of a rollout change it), for the next deploy to compare with."""
    if len(skipped) == len(every):
        live = live_before  # nothing was written: what was read is current
    else:
        live = live_objects(kube, settings, kinds,
                            [o["metadata"]["name"] for o in every if o["kind"] == "Namespace"])
    entries = {}
    for obj in every:
        key = applied.key_of(obj)
        found = live.get(key)
        if found is not None:
            entries[key] = applied.Entry(applied.manifest_hash(obj),
                                         found["metadata"].get("resourceVersion", ""),
                                         obj["apiVersion"])
    applied.save(loaded.state_dir, scope, entries)
