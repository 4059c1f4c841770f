"""The deploy gates' workload checks, shared by the raw (3) and Helm (4) stages: the
Deployments available, the migration Job done, every Service with endpoints, no container
restarted, and the pods running exactly the built images."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from todo_deploy.gates import Check
from todo_deploy.kube import Kube, restarted_containers, runs_image
from todo_deploy.release.objects import parallel

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef


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
    checks = [deployments_check(fetched["deployments"], namespace)]
    if migration_job is not None:
        checks.append(migration_job_check(fetched["job"], migration_job, namespace))
    checks.append(endpoints_check(fetched["services"], fetched["endpoints"]))
    pods = [
        p for p in fetched["pods"]
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]
    checks.append(restarts_check(pods, since))
    checks.append(image_check(pods, images))
    return checks


def deployments_check(deployments: list[dict[str, Any]], namespace: str) -> Check:
    rows, ok = [], bool(deployments)
    for dep in deployments:
        want = dep["spec"].get("replicas", 1)
        st = dep.get("status", {})
        ok = ok and st.get("readyReplicas", 0) == want and st.get("availableReplicas", 0) == want
        rows.append(f"{dep['metadata']['name']} {st.get('readyReplicas', 0)}/{want}")
    return Check.of(
        "Deployments available", ok, ", ".join(rows) or "no Deployments found",
        f"see the rollout diagnosis above; `kubectl -n {namespace} describe deploy`",
    )


def migration_job_check(job: dict[str, Any] | None, name: str, namespace: str) -> Check:
    succeeded = bool(job and job.get("status", {}).get("succeeded", 0) >= 1)
    state = "succeeded" if succeeded else "missing" if job is None else str(job.get("status", {}))
    return Check.of("migration Job succeeded", succeeded, f"Job {name}: {state}",
                    f"`kubectl -n {namespace} logs job/{name}`")


def endpoints_check(services: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> Check:
    by_name = {ep["metadata"]["name"]: ep for ep in endpoints}
    empty = []
    for svc in services:
        ep = by_name.get(svc["metadata"]["name"])
        addresses = sum(len(s.get("addresses", []) or []) for s in (ep or {}).get("subsets", []) or [])
        if addresses == 0:
            empty.append(svc["metadata"]["name"])
    return Check.of(
        "every Service has endpoints", bool(services) and not empty,
        f"{len(services) - len(empty)}/{len(services)} Services with ready endpoints"
        + (f"; none for {', '.join(empty)}" if empty else ""),
        "a Service without endpoints has no ready pod matching its selector",
    )


def restarts_check(pods: list[dict[str, Any]], since: datetime | None) -> Check:
    restarted, earlier = restarted_containers(pods, since)
    evidence = (f"{len(pods)} pods, no restart" + (" since this stage began" if since else "")
                if not restarted else ", ".join(restarted))
    if earlier:
        evidence += "; not counted, before this stage began: " + ", ".join(earlier)
    return Check.of(
        "no container restarted", not restarted, evidence,
        "a restart means a crash or a failed liveness probe: `kubectl logs --previous`",
    )

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
