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

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from todo_deploy.access import live_node_port
from todo_deploy.artifacts import load_images
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.console import say
from todo_deploy.doctor import explain
from todo_deploy.gates import Check, Details, GateResult, Verdict
from todo_deploy.kube import (
    Kube,
    KubeError,
    ObjectRef,
    applied,
    job_state,
    label_selector,
    restarted_containers,
    runs_image,
    switch,
    wait_for,
)
from todo_deploy.timing import Timeline

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.stages import raw_rollback

STAGE = "deploy"


@dataclass
class DeployDetails(Details):
    namespace: str = ""
    release: str = ""
    images: dict[str, str] = field(default_factory=dict)  # component -> the ref deployed
    uninstalled_helm_release: bool = False  # switched from Helm: its objects taken over
    rolled_back_to: str = ""  # a failed deploy put back the last passing one (its images)
    applied: int = 0  # objects written
    unchanged: int = 0  # objects skipped: the same as recorded and live
    changed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)  # the waits
    duration_s: float = 0.0
    timings: dict[str, Any] = field(default_factory=dict)  # every phase (timing.Timeline)
    diagnosis: str = ""  # the doctor's explanation of a failed rollout
# Pod Security Standards: the app's namespace enforces "restricted".
PSS_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
NEVER_PRUNE = frozenset({"PersistentVolumeClaim", "Pod"})
CONFIG_KINDS = frozenset({"ConfigMap", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim"})


class DeployError(Exception):
    """A step failed; the message explains it (diagnosis included)."""


def raw_selector(settings: Settings) -> str:
    return label_selector({**chart_values.app_labels(settings), "app.kubernetes.io/managed-by": chart_values.MANAGED_BY})


def app_selector(settings: Settings) -> str:
    return label_selector(chart_values.app_labels(settings))


def secret_objects(settings: Settings) -> list[dict[str, Any]]:
    """The Secrets to apply, with base64 `data` (deterministic for no-op re-applies)."""
    objects = []
    for obj in chart_values.secret_manifests(settings):
        obj = dict(obj)
        string_data = obj.pop("stringData", {})
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
        objects.append(obj)
    return objects


def ensure_secrets(kube: Kube, settings: Settings) -> list[str]:
    """Create/update the Secrets through the API; returns their names (never values)."""
    names = []
    for obj in secret_objects(settings):
        kube.apply(obj)
        names.append(obj["metadata"]["name"])
    from todo_deploy.chart.ingress import ensure_tls_secret

    return names + ensure_tls_secret(kube, settings)  # INGRESS_TLS=self-signed's


def namespace_objects(settings: Settings, rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Namespace(s) to apply, with the restricted Pod Security labels."""
    namespaces = [o for o in rendered if o["kind"] == "Namespace"] or [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": settings.namespace}}
    ]
    out = []
    for ns in namespaces:
        labels = {**PSS_LABELS, **(ns["metadata"].get("labels") or {})}
        out.append({**ns, "metadata": {**ns["metadata"], "labels": labels}})
    return out


def ensure_namespace(kube: Kube, settings: Settings, rendered: list[dict[str, Any]]) -> None:
    for ns in namespace_objects(settings, rendered):
        kube.apply(ns)


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


def parallel(fn: Callable[[Any], Any], items: list[Any], workers: int = 8) -> list[Any]:
    """fn over items on a few threads (the API answers requests concurrently); results
    in order; the first exception is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


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


def helm_release_present(kube: Kube, settings: Settings) -> bool:
    """The release's record is in the namespace (switch.release_record: its revision Secrets)."""
    return bool(switch.release_record(kube, settings))


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


# ---- the gate's workload checks (shared with the Helm stage) ------------------------------


def workload_checks(
    kube: Kube,
    namespace: str,
    selector: str,
    images: dict[str, ImageRef],
    migration_job: str | None = None,
    since: datetime | None = None,
) -> list[Check]:
    """The workload's state after a rollout. A container restart counts when it happened
    at or after `since` (the stage's start) or the container is crash-looping now: one from
    before (a reboot of the node, which restarts every container) is shown, not failed."""

    reads: dict[str, Callable[[], Any]] = {
        "deployments": lambda: kube.list("apps/v1", "Deployment", namespace, selector),
        "job": lambda: kube.get("batch/v1", "Job", migration_job, namespace) if migration_job else None,
        "services": lambda: kube.list("v1", "Service", namespace, selector),
        "endpoints": lambda: kube.list("v1", "Endpoints", namespace),
        "pods": lambda: kube.list("v1", "Pod", namespace, selector),
    }
    fetched = dict(zip(reads, parallel(lambda read: read(), list(reads.values())), strict=True))
    checks = []
    deployments = fetched["deployments"]
    rows, ok = [], bool(deployments)
    for dep in deployments:
        want = dep["spec"].get("replicas", 1)
        st = dep.get("status", {})
        good = st.get("readyReplicas", 0) == want and st.get("availableReplicas", 0) == want
        ok = ok and good
        rows.append(f"{dep['metadata']['name']} {st.get('readyReplicas', 0)}/{want}")
    checks.append(Check.of(
        "Deployments available", ok, ", ".join(rows) or "no Deployments found",
        "see the rollout diagnosis above; `kubectl -n {ns} describe deploy`".replace("{ns}", namespace),
    ))

    if migration_job is not None:
        job = fetched["job"]
        succeeded = bool(job and job.get("status", {}).get("succeeded", 0) >= 1)
        checks.append(Check.of(
            "migration Job succeeded", succeeded,
            f"Job {migration_job}: " + ("succeeded" if succeeded else
                                         "missing" if job is None else str(job.get("status", {}))),
            f"`kubectl -n {namespace} logs job/{migration_job}`",
        ))

    services = fetched["services"]
    endpoints = {ep["metadata"]["name"]: ep for ep in fetched["endpoints"]}
    empty = []
    for svc in services:
        ep = endpoints.get(svc["metadata"]["name"])
        addresses = sum(len(s.get("addresses", []) or []) for s in (ep or {}).get("subsets", []) or [])
        if addresses == 0:
            empty.append(svc["metadata"]["name"])
    checks.append(Check.of(
        "every Service has endpoints", bool(services) and not empty,
        f"{len(services) - len(empty)}/{len(services)} Services with ready endpoints"
        + (f"; none for {', '.join(empty)}" if empty else ""),
        "a Service without endpoints has no ready pod matching its selector",
    ))

    pods = [
        p for p in fetched["pods"]
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]
    restarted, earlier = restarted_containers(pods, since)
    evidence = (f"{len(pods)} pods, no restart" + (" since this stage began" if since else "")
                if not restarted else ", ".join(restarted))
    if earlier:
        evidence += "; not counted, before this stage began: " + ", ".join(earlier)
    checks.append(Check.of(
        "no container restarted", not restarted, evidence,
        "a restart means a crash or a failed liveness probe: `kubectl logs --previous`",
    ))

    checks.append(image_check(pods, images))
    return checks


def image_check(pods: list[dict[str, Any]], images: dict[str, ImageRef]) -> Check:
    """Every started container of the built images runs the image ID recorded at build.

    A container that has not started yet (kube.runs_image) is named in the evidence, not
    failed; the Deployments' readiness covers pods that never start."""
    by_ref = {img.ref: img for img in images.values()}
    matched, wrong, unstarted = 0, [], []
    for pod in pods:
        spec_images = {c["name"]: c["image"] for c in pod["spec"].get("containers", [])}
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            img = by_ref.get(spec_images.get(cs["name"], ""))
            if img is None:
                continue
            runs = runs_image(cs, img.image_id)
            if runs is False and img.digest:  # pulled from the registry: its manifest digest
                runs = runs_image(cs, img.digest)
            if runs is None:
                unstarted.append(pod["metadata"]["name"])
            elif runs:
                matched += 1
            else:
                wrong.append(f"{pod['metadata']['name']} runs {cs['imageID']}, "
                             f"built {img.image_id or '(no id recorded)'}")
    pushed = " or pushed digests" if any(img.digest for img in images.values()) else ""
    evidence = (f"{matched} containers run the recorded image IDs{pushed}" if not wrong
                else "; ".join(wrong))
    if unstarted:
        evidence += f"; not started yet, not counted: {', '.join(sorted(set(unstarted)))}"
    return Check.of(
        "pods run exactly the built images", matched > 0 and not wrong, evidence,
        "the node has a different image under the same tag: re-run `inv build` and `inv cluster`",
    )


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
    from todo_deploy.stages import raw_rollback

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
