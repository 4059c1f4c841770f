"""Stage 3, `inv deploy`: the chart rendered in-process (todo_deploy/manifests.py,
no Helm release), applied server-side in order.

Order: namespace, Secrets (from the settings, through the API only), config,
database (then wait for it), the migration Job (then wait; its failure stops
the deploy before any Deployment changes), then Deployments/Services/
NetworkPolicies, prune what is no longer rendered (never PVCs), and wait for
the rollout. With nothing changed every apply is a no-op and no wait happens.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from todo_deploy.access import live_node_port
from todo_deploy.console import say
from todo_deploy.gates import Check, GateResult, Verdict

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.kube import Kube, ObjectRef

STAGE = "deploy"
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
    from todo_deploy import render
    from todo_deploy.kube import label_selector

    return label_selector({**render.app_labels(settings), "app.kubernetes.io/managed-by": render.MANAGED_BY})


def app_selector(settings: Settings) -> str:
    from todo_deploy import render
    from todo_deploy.kube import label_selector

    return label_selector(render.app_labels(settings))


def secret_objects(settings: Settings) -> list[dict[str, Any]]:
    """The Secrets to apply, with base64 `data` (deterministic for no-op re-applies)."""
    from todo_deploy import render

    objects = []
    for obj in render.secret_manifests(settings):
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
    return names


def ensure_namespace(kube: Kube, settings: Settings, rendered: list[dict[str, Any]]) -> None:
    namespaces = [o for o in rendered if o["kind"] == "Namespace"]
    if namespaces:
        for ns in namespaces:
            labels = ns["metadata"].setdefault("labels", {})
            for key, value in PSS_LABELS.items():
                labels.setdefault(key, value)
            kube.apply(ns)
    else:
        kube.ensure_namespace(settings.namespace, PSS_LABELS)


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


def apply_all(kube: Kube, objects: list[dict[str, Any]], log: Callable[[str], None]) -> list[str]:
    """Apply each object; returns the ones whose resourceVersion changed."""
    from todo_deploy.kube import FIELD_MANAGER, KubeError, ObjectRef

    changed = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        try:
            after = kube.apply(obj)
        except KubeError as exc:
            if ref.kind == "Job" and exc.status == 422:
                # A Job's pod template is immutable: replace it.
                log(f"{ref} changed in an immutable field: replacing it")
                kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
                kube.wait_deleted([ref], timeout=60)
                after = kube.apply(obj)
            else:
                raise DeployError(f"applying {ref} failed: {exc}") from None
        managed = [
            m for m in after["metadata"].get("managedFields", []) if m.get("manager") == FIELD_MANAGER
        ]
        if _fresh(managed):
            changed.append(str(ref))
    return changed


def _fresh(managed: list[dict[str, Any]], window_s: float = 5) -> bool:
    """Was our field manager's entry written in the last few seconds (i.e. a real change)?"""
    from datetime import UTC, datetime

    for entry in managed:
        stamp = entry.get("time")
        if not stamp:
            continue
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            continue
        if (datetime.now(UTC) - when).total_seconds() < window_s:
            return True
    return False


def prune(
    kube: Kube,
    settings: Settings,
    keep: list[dict[str, Any]],
    log: Callable[[str], None],
) -> list[str]:
    """Delete this app's raw objects that are no longer rendered (never PVCs)."""
    from todo_deploy.kube import ObjectRef

    wanted = {ObjectRef.of(o).key for o in keep}
    removed = []
    for obj in kube.list_owned(settings.namespace, raw_selector(settings)):
        ref = ObjectRef.of(obj)
        if ref.kind in NEVER_PRUNE or ref.key in wanted:
            continue
        log(f"pruning {ref} (no longer rendered)")
        propagation = "Background" if ref.kind == "Job" else "Foreground"
        if kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace, propagation):
            removed.append(str(ref))
    return removed


def _refs(objects: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[ObjectRef]:
    from todo_deploy.kube import ObjectRef

    return [ObjectRef.of(o) for o in objects if o["kind"] in kinds]


def _wait_or_explain(
    kube: Kube, refs: list[ObjectRef], deadline: float, what: str, log: Callable[[str], None],
    settings: Settings,
) -> float:
    from todo_deploy.kube import wait_for
    from todo_deploy.stages.aiops.doctor import explain

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
    """Helm keeps each release revision as a Secret labelled owner=helm,name=<release>."""
    secrets = kube.list(
        "v1", "Secret", settings.namespace, f"owner=helm,name={settings.release_name}"
    )
    return bool(secrets)


def remove_helm_release(kube: Kube, settings: Settings, log: Callable[[str], None]) -> bool:
    if not helm_release_present(kube, settings):
        return False
    from todo_deploy import helm
    from todo_deploy.runner import Runner

    engine = helm.engine(Runner(log=log, secrets=settings.secret_values()), settings.context_name)
    log(
        f"switching to raw manifests: uninstalling Helm release {settings.release_name} "
        f"({engine.name}); PersistentVolumeClaims are kept"
    )
    engine.uninstall(settings.release_name, settings.namespace)
    return True


# ---- the gate's workload checks (shared with the Helm stage) ------------------------------


def workload_checks(
    kube: Kube,
    namespace: str,
    selector: str,
    images: dict[str, ImageRef],
    migration_job: str | None = None,
) -> list[Check]:
    from todo_deploy.kube import image_id_matches

    checks = []
    deployments = kube.list("apps/v1", "Deployment", namespace, selector)
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
        job = kube.get("batch/v1", "Job", migration_job, namespace)
        succeeded = bool(job and job.get("status", {}).get("succeeded", 0) >= 1)
        checks.append(Check.of(
            "migration Job succeeded", succeeded,
            f"Job {migration_job}: " + ("succeeded" if succeeded else
                                         "missing" if job is None else str(job.get("status", {}))),
            f"`kubectl -n {namespace} logs job/{migration_job}`",
        ))

    services = kube.list("v1", "Service", namespace, selector)
    empty = []
    for svc in services:
        ep = kube.get("v1", "Endpoints", svc["metadata"]["name"], namespace)
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
        p for p in kube.list("v1", "Pod", namespace, selector)
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]
    restarted = [
        f"{p['metadata']['name']}/{cs['name']} x{cs.get('restartCount', 0)}"
        for p in pods for cs in p.get("status", {}).get("containerStatuses", []) or []
        if cs.get("restartCount", 0)
    ]
    checks.append(Check.of(
        "no container restarted", not restarted,
        f"{len(pods)} pods, restartCount 0 everywhere" if not restarted else ", ".join(restarted),
        "a restart means a crash or a failed liveness probe: `kubectl logs --previous`",
    ))

    by_ref = {img.ref: img for img in images.values()}
    matched, wrong = 0, []
    for pod in pods:
        spec_images = {c["name"]: c["image"] for c in pod["spec"].get("containers", [])}
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            img = by_ref.get(spec_images.get(cs["name"], ""))
            if img is None:
                continue
            if img.image_id and image_id_matches(cs.get("imageID", ""), img.image_id):
                matched += 1
            else:
                wrong.append(f"{pod['metadata']['name']} runs {cs.get('imageID') or '?'}, "
                             f"built {img.image_id or '(no id recorded)'}")
    checks.append(Check.of(
        "pods run exactly the built images", matched > 0 and not wrong,
        f"{matched} containers run the recorded image IDs" if not wrong else "; ".join(wrong),
        "the node has a different image under the same tag: re-run `inv build` and `inv cluster`",
    ))
    return checks


# ---- the stage --------------------------------------------------------------------------------


def run(
    loaded: LoadedSettings,
    *,
    kube: Kube | None = None,
    timeout_s: int | None = None,
    log: Callable[[str], None] = say,
) -> GateResult:
    from todo_deploy import manifests
    from todo_deploy.artifacts import load_images
    from todo_deploy.kube import Kube, KubeError

    settings = loaded.settings
    started = time.monotonic()
    result = GateResult(STAGE, details={"namespace": settings.namespace, "release": settings.release_name})
    images = load_images(loaded.state_dir)
    if not images:
        result.checks.append(Check.of(
            "build recorded", False, "no .state/images.json", "run `inv build` first"))
        return result
    result.details["images"] = {k: v.ref for k, v in images.items()}
    deadline = started + (timeout_s or settings.deploy_timeout_seconds)
    try:
        kube = kube or Kube(settings.context_name)
        node_port = live_node_port(kube, settings)  # kept when the Helm release goes
        rendered = manifests.render_manifests(settings, images, node_port)
        groups = phases(rendered)
        job_name = manifests.migration_job(rendered)

        if remove_helm_release(kube, settings, log):
            result.details["uninstalled_helm_release"] = True
        ensure_namespace(kube, settings, rendered)
        secret_names = ensure_secrets(kube, settings)
        secrets = secret_objects(settings)
        changed = apply_all(kube, groups["config"], log)
        changed += apply_all(kube, groups["database"], log)
        timings: dict[str, float] = {}
        timings["database"] = _wait_or_explain(
            kube, _refs(groups["database"], ("StatefulSet", "Deployment")), deadline,
            "database ready", log, settings)
        changed += apply_all(kube, groups["migration"], log)
        timings["migration"] = _wait_or_explain(
            kube, _refs(groups["migration"], ("Job",)), deadline, "migration Job", log, settings)
        changed += apply_all(kube, groups["app"], log)
        pruned = prune(kube, settings, rendered + secrets, log)
        timings["rollout"] = _wait_or_explain(
            kube, _refs(groups["app"], ("Deployment", "StatefulSet")), deadline, "rollout", log,
            settings)
    except DeployError as exc:
        log(str(exc))
        result.checks.append(Check.of(
            "deploy finished", False, str(exc).splitlines()[0],
            "read the diagnosis printed above; fix it and re-run `inv deploy`",
        ))
        result.details["diagnosis"] = str(exc)
        return result
    except KubeError as exc:
        result.checks.append(Check.of(
            "deploy finished", False, str(exc), "is the cluster up? run `inv cluster`"))
        return result

    elapsed = time.monotonic() - started
    result.details.update({
        "applied": len(rendered) + len(secret_names), "changed": changed, "pruned": pruned,
        "timings_s": {k: round(v, 2) for k, v in timings.items()}, "duration_s": round(elapsed, 2),
    })
    result.checks.append(Check(
        "objects applied (server-side, field manager todo-deploy)", Verdict.PASS,
        f"{len(rendered)} objects + {len(secret_names)} Secrets; changed: {len(changed)}; "
        f"pruned: {len(pruned)}; {elapsed:.1f}s",
    ))
    result.checks.extend(workload_checks(kube, settings.namespace, raw_selector(settings), images, job_name))
    return result
