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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from todo_deploy.access import live_node_port
from todo_deploy.artifacts import load_images
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.chart.ingress import ensure_tls_secret
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
    from todo_deploy.artifacts import ImageRef
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


@dataclass
class _Deploy:
    """One deploy's working state: what was rendered and read, and what it did."""

    loaded: LoadedSettings
    images: dict[str, ImageRef]
    timeline: Timeline
    log: Callable[[str], None]
    deadline: float
    kube: Kube | None = None
    dev: bool = False  # the chart's dev.enabled (live update)
    rendered: list[dict[str, Any]] = field(default_factory=list)
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    every: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, applied.Entry] = field(default_factory=dict)
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    helm_release: bool = False
    changed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    waits: dict[str, float] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    @property
    def cluster(self) -> Kube:
        assert self.kube is not None, "connected first"
        return self.kube

    @property
    def groups(self) -> dict[str, list[dict[str, Any]]]:
        return phases(self.rendered)

    def todo(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The objects to apply: not unchanged since the last deploy (the rest are skipped)."""
        out = [o for o in objects if not applied.unchanged(o, self.recorded, self.versions)]
        self.skipped.extend(f"{o['kind']}/{o['metadata']['name']}" for o in objects if o not in out)
        why = {applied.why_applied(o, self.recorded, self.versions) for o in out}
        if out and self.recorded:
            self.log(f"deploy: to apply: {', '.join(sorted(why))}")
        return out

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.changed += apply_all(self.cluster, objects, self.versions, self.log)

    def wait(self, refs: list[ObjectRef], what: str) -> float:
        return _wait_or_explain(self.cluster, refs, self.deadline, what, self.log, self.settings)


def _read_cluster(work: _Deploy) -> None:
    """Connect, render for this cluster, and read what is live (and whether Helm owns it)."""
    settings, phase = work.settings, work.timeline.phase
    with phase("connect"):
        work.kube = work.kube or Kube(settings.context_name)
        node_port = live_node_port(work.kube, settings)  # kept when the Helm release goes
    with phase("render the chart"):
        work.rendered = manifests.render_manifests(settings, work.images, node_port,
                                                   cache_dir=work.loaded.state_dir,
                                                   capabilities=work.kube.capabilities(),
                                                   dev=work.dev)
    work.namespaces = namespace_objects(settings, work.rendered)
    work.secrets = secret_objects(settings)
    work.every = work.namespaces + work.secrets + [o for o in work.rendered
                                                   if o["kind"] != "Namespace"]
    work.recorded = applied.load(work.loaded.state_dir, applied.scope_of(settings))
    kinds = {o["kind"]: o["apiVersion"] for o in work.every if o["kind"] != "Namespace"}
    for key, entry in work.recorded.items():
        kinds.setdefault(key.split("/", 1)[0], entry.api_version)
    kinds.pop("Namespace", None)
    work.kinds = kinds
    kube = work.kube
    with phase("read the live objects"):
        work.helm_release, work.live = parallel(lambda read: read(), [
            lambda: helm_release_present(kube, settings),
            lambda: live_objects(kube, settings, kinds,
                                 [n["metadata"]["name"] for n in work.namespaces]),
        ])
    if work.helm_release:
        work.log(f"switching to raw manifests: taking over the live objects of Helm release "
                 f"{settings.release_name} (server-side apply; nothing is deleted)")
        work.recorded, work.live = {}, {}
        applied.forget_renders(work.loaded.state_dir)
    work.versions = {key: obj["metadata"].get("resourceVersion", "")
                     for key, obj in work.live.items()}


def _apply_config(work: _Deploy) -> None:
    """The Namespace, the Secrets and the config; the Ingress' self-signed TLS Secret."""
    phase = work.timeline.phase
    if objects := work.todo(work.namespaces):
        with phase("apply namespace"):
            work.apply(objects)
    if objects := work.todo(work.secrets + work.groups["config"]):
        with phase(f"apply Secrets and config ({len(objects)})"):
            work.apply(objects)
    ensure_tls_secret(work.cluster, work.settings)  # INGRESS_TLS=self-signed: once per host


def _migrate(work: _Deploy) -> None:
    """The database (waited for), then the migration Job unless it already succeeded for
    this image's migrations and database (its failure stops the deploy here)."""
    phase, groups = work.timeline.phase, work.groups
    jobs = [o for o in groups["migration"] if o["kind"] == "Job"]
    # The database and what the migration Job needs first (its NetworkPolicy).
    database = work.todo(groups["database"])
    before_job = work.todo([o for o in groups["migration"] if o["kind"] != "Job"])
    if database or before_job:
        with phase(f"apply database ({len(database + before_job)})"):
            if work.helm_release:
                database = _apply_statefulsets_keeping_pods(work.cluster, database, work.log)
            work.apply(database + before_job)
    migrated = _migration_done(jobs, work.live, job_state)
    if migrated:
        work.skipped.extend(f"Job/{o['metadata']['name']}" for o in jobs)
        if any(not applied.unchanged(j, work.recorded, work.versions) for j in jobs):
            work.log(f"migrations unchanged: Job {migrated} already succeeded for this image's "
                     "migrations and database; not run again")
    if database or (jobs and not migrated):
        with phase("wait database"):
            work.waits["database"] = work.wait(
                _refs(groups["database"], ("StatefulSet", "Deployment")), "database ready")
    if jobs and not migrated:
        with phase("apply migration Job"):
            _retry_failed_jobs(work.cluster, jobs, work.live, job_state, work.log)
            work.apply(jobs)
        with phase("wait migration Job"):
            work.waits["migration"] = work.wait(_refs(jobs, ("Job",)), "migration Job")


def _roll_out(work: _Deploy) -> None:
    """The app's objects, the Helm release handed over, what is no longer rendered pruned,
    then the rollout waited for."""
    phase, kube, settings = work.timeline.phase, work.cluster, work.settings
    app = work.todo(work.groups["app"])
    if app:
        with phase(f"apply app ({len(app)})"):
            work.apply(app)
    if work.helm_release:
        with phase("hand the Helm release over"):
            take_over_helm_release(kube, settings, work.every, work.log)
    if work.recorded:
        # The live lists cover every kind applied before: whatever they hold that is
        # no longer rendered is what to prune (no further requests).
        kept = {applied.key_of(k) for k in work.every}
        leftovers = [o for o in work.live.values() if applied.key_of(o) not in kept]
        if leftovers:
            with phase("prune"):
                work.pruned = prune(kube, settings, work.every, work.log, candidates=leftovers)
    else:
        with phase("prune (every kind: no record of the last deploy)"):
            work.pruned = prune(kube, settings, work.every, work.log)
    rolling = _refs(app, ("Deployment", "StatefulSet"))
    if rolling:
        with phase("wait rollout"):
            work.waits["rollout"] = work.wait(rolling, "rollout")


def _failed(result: GateResult, details: DeployDetails, work: _Deploy, evidence: str,
            fix: str) -> GateResult:
    result.checks.append(Check.of("deploy finished", False, evidence, fix))
    details.timings = work.timeline.as_details()
    applied.forget(work.loaded.state_dir)
    result.details = details.as_dict()
    return result


def _gate(result: GateResult, details: DeployDetails, work: _Deploy, elapsed: float,
          began: datetime) -> GateResult:
    """What was applied, the workload checks, and the record for the next deploy."""
    settings, skipped, total = work.settings, work.skipped, len(work.every)
    details.applied, details.unchanged = total - len(skipped), len(skipped)
    details.changed, details.pruned = work.changed, work.pruned
    details.timings_s = {k: round(v, 2) for k, v in work.waits.items()}
    details.duration_s = round(elapsed, 2)
    result.checks.append(Check(
        "objects applied (server-side, field manager todo-deploy)", Verdict.PASS,
        f"{total} objects ({len(work.secrets)} Secrets): {len(skipped)} unchanged since the "
        f"last deploy (skipped), {total - len(skipped)} applied, {len(work.changed)} changed; "
        f"pruned: {len(work.pruned)}; {elapsed:.1f}s",
    ))
    job_name = manifests.migration_job(work.rendered)
    with work.timeline.phase("gate checks"):
        result.checks.extend(workload_checks(work.cluster, settings.namespace,
                                             raw_selector(settings), work.images, job_name,
                                             since=began))
    scope = applied.scope_of(settings)
    if result.passed:
        with work.timeline.phase("record what was applied"):
            _record(work.cluster, work.loaded, scope, settings, work.every, work.kinds,
                    work.live, skipped)
            applied.remember_render(work.loaded.state_dir, scope, details.images, work.every)
    else:
        applied.forget(work.loaded.state_dir)
    details.timings = work.timeline.as_details()
    result.details = details.as_dict()
    return result


def run(
    loaded: LoadedSettings,
    *,
    kube: Kube | None = None,
    timeout_s: int | None = None,
    log: Callable[[str], None] = say,
    dev: bool = False,
) -> GateResult:
    """`dev`: render the app's pods for live update (issue 24); a normal deploy renders
    them without it, which replaces dev pods with the built images' own."""
    settings = loaded.settings
    started, began = time.monotonic(), datetime.now(UTC)
    result = GateResult(STAGE)
    details = DeployDetails(namespace=settings.namespace, release=settings.release_name,
                            dev=dev)
    images = load_images(loaded.state_dir)
    if not images:
        result.checks.append(Check.of(
            "build recorded", False, "no .state/images.json", "run `inv build` first"))
        result.details = details.as_dict()
        return result
    details.images = {k: v.ref for k, v in images.items()}
    deadline = started + (timeout_s or settings.deploy_timeout_seconds)
    work = _Deploy(loaded, images, Timeline(log, prefix="deploy "), log, deadline, kube, dev)
    try:
        _read_cluster(work)
        details.uninstalled_helm_release = work.helm_release
        _apply_config(work)
        _migrate(work)
        _roll_out(work)
    except DeployError as exc:
        log(str(exc))
        restored = _restore_last_passing(work.kube, loaded, applied.scope_of(settings), deadline,
                                         log)
        details.rolled_back_to = restored.message if restored else ""
        details.diagnosis = str(exc)
        evidence = str(exc).splitlines()[0] + (f"; {restored.message}" if restored else "")
        return _failed(result, details, work, evidence,
                       "read the diagnosis printed above; fix it and re-run `inv deploy`")
    except KubeError as exc:
        return _failed(result, details, work, str(exc), "is the cluster up? run `inv cluster`")
    return _gate(result, details, work, time.monotonic() - started, began)


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
