"""Causes that belong to an object rather than a pod: a ReplicaSet that cannot create
pods, an image that is not the recorded build, an unbound PVC, a failed Job, a Service
without endpoints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from todo_deploy.doctor.hints import delivery_step, storage_hint
from todo_deploy.doctor.model import (
    Finding,
    Index,
    Obj,
    Snapshot,
    Target,
    Workload,
    controller_of,
    dig,
    events_for,
    labels_of,
    matches,
    name_of,
    statuses_of,
)
from todo_deploy.doctor.symptoms import container_state, log_excerpt
from todo_deploy.kube import image_id_matches

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef


def _is_default(storage_class: Obj) -> bool:
    annotations = dig(storage_class, "metadata", "annotations", default={})
    return any(
        annotations.get(key) == "true"
        for key in (
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        )
    )


def pvc_findings(
    pvcs: Iterable[Obj], storage_classes: list[Obj], events: list[Obj], target: Target | None = None
) -> list[Finding]:
    """Unbound PersistentVolumeClaims: a missing StorageClass, no default class, a failed provision."""
    findings: list[Finding] = []
    classes = {name_of(sc): sc for sc in storage_classes}
    defaults = [name for name, sc in classes.items() if _is_default(sc)]
    available = ", ".join(f"{n} (default)" if n in defaults else n for n in classes) or "none"
    for pvc in pvcs:
        if dig(pvc, "status", "phase") != "Pending":
            continue
        name = name_of(pvc)
        obj = f"PersistentVolumeClaim/{name}"
        wanted = dig(pvc, "spec", "storageClassName")
        last = events_for(events, "PersistentVolumeClaim", name)
        event_text = f"; event {last[-1].get('reason')}: {last[-1].get('message')}" if last else ""
        if wanted is None and not defaults:
            findings.append(Finding(
                "unbound PVC", obj,
                f"no storageClassName and the cluster has no default StorageClass "
                f"(classes: {available}){event_text}",
                f"mark a StorageClass default ({storage_hint(target or Target())}) or set "
                "storageClassName",
            ))
        elif wanted == "":
            findings.append(Finding(
                "unbound PVC", obj,
                f'storageClassName "" binds only to a pre-made PersistentVolume with no class, '
                f"and none matches{event_text}",
                f"create a matching PersistentVolume or set storageClassName to one of: {available}",
            ))
        elif wanted is not None and wanted not in classes:
            findings.append(Finding(
                "unbound PVC", obj,
                f"StorageClass {wanted!r} does not exist (classes: {available}){event_text}",
                f"set storageClassName to an existing class ({available}) or leave it out to "
                "use the default class; or create that StorageClass",
            ))
        else:
            class_name = wanted or (defaults[0] if defaults else "")
            mode = classes.get(class_name, {}).get("volumeBindingMode") or "Immediate"
            warnings = [e for e in last if e.get("type") == "Warning"]
            if mode == "WaitForFirstConsumer" or not warnings:
                continue  # binds when a pod uses it, or still provisioning without complaint
            findings.append(Finding(
                "unbound PVC", obj,
                f"StorageClass {class_name} could not provide a volume: "
                f"{warnings[-1].get('reason')}: {warnings[-1].get('message')}",
                f"check the provisioner of StorageClass {class_name} "
                f"({classes.get(class_name, {}).get('provisioner', '?')}) and its logs",
            ))
    return findings


def service_findings(
    services: Iterable[Obj], endpoints: list[Obj], pods: list[Obj]
) -> list[Finding]:
    """Services with no ready endpoint: a selector that matches nothing, or no Ready pod."""
    findings: list[Finding] = []
    by_name = {name_of(e): e for e in endpoints}
    live = [p for p in pods if dig(p, "status", "phase") not in ("Succeeded", "Failed")]
    for service in services:
        selector = dig(service, "spec", "selector", default={})
        if not selector or dig(service, "spec", "type") == "ExternalName":
            continue
        name = name_of(service)
        subsets = dig(by_name.get(name, {}), "subsets", default=[])
        if sum(len(s.get("addresses") or []) for s in subsets):
            continue
        shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        matching = [p for p in live if matches(selector, labels_of(p))]
        if not matching:
            label_sets = sorted(
                {",".join(f"{k}={v}" for k, v in sorted(labels_of(p).items())) for p in live}
            )[:3]
            present = "; ".join(label_sets) or "no pods at all"
            findings.append(Finding(
                "Service without endpoints", f"Service/{name}",
                f"selector {shown} matches no pod in the namespace (pod labels here: {present})",
                f"fix spec.selector of Service/{name} or the pod template's labels so they "
                "match, then `inv deploy`",
            ))
        else:
            names = ", ".join(name_of(p) for p in matching[:5])
            findings.append(Finding(
                "Service without endpoints", f"Service/{name}",
                f"selector {shown} matches {len(matching)} pod(s) ({names}) but none is Ready",
                "make the matching pods Ready (see their findings: probes, crashes, images)",
            ))
    return findings


def job_findings(jobs: Iterable[Obj], pods: list[Obj], logs: Mapping[str, str]) -> list[Finding]:
    """Failed Jobs (e.g. the migration Job), with their pod's exit code and last log lines."""
    findings: list[Finding] = []
    for job in jobs:
        conditions = dig(job, "status", "conditions", default=[])
        failed_condition = next(
            (c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None
        )
        name = name_of(job)
        job_pods = sorted(
            (p for p in pods if labels_of(p).get("job-name") == name),
            key=lambda p: str(dig(p, "metadata", "creationTimestamp", default="")),
        )
        # The controller counts failures (and sets Failed) only after its back-off delay;
        # the pods say it first.
        failed = max(int(dig(job, "status", "failed", default=0)),
                     sum(1 for p in job_pods if dig(p, "status", "phase") == "Failed"))
        backoff = int(dig(job, "spec", "backoffLimit", default=6))
        if failed_condition is None and failed <= backoff:
            continue
        detail = ""
        if job_pods:
            pod = job_pods[-1]
            pod_name = name_of(pod)
            exits: list[str] = []
            detail_logs = "no log output"
            for status in statuses_of(pod):
                _, _, terminated = container_state(status)
                if terminated is not None:
                    exits.append(f"{status.get('name')} exited {terminated.get('exitCode')}")
                detail_logs = log_excerpt(logs, pod_name, str(status.get("name")))
            detail = f"; pod {pod_name}: {', '.join(exits) or 'no exit recorded'}; {detail_logs}"
        why = (
            f"{failed_condition.get('reason')}: {failed_condition.get('message')}"
            if failed_condition
            else f"{failed} failed pod(s), backoffLimit {backoff}"
        )
        findings.append(Finding(
            "failed Job", f"Job/{name}",
            f"Job failed ({why}){detail}",
            "fix what the log shows (for the migration Job usually DATABASE_URL or the database "
            f"itself), then `kubectl delete job {name} -n "
            f"{dig(job, 'metadata', 'namespace', default='<namespace>')}` and `inv deploy` to run "
            "it again",
        ))
    return findings


def failed_create_findings(snapshot: Snapshot, index: Index, events: list[Obj]) -> list[Finding]:
    """Workloads short of pods because their controller cannot create them (quota, policy,
    a missing ServiceAccount): there is no pod to diagnose, only the controller's event."""
    current: dict[tuple[str, str], Workload] = {}
    for dep in snapshot.deployments:
        revision = dig(dep, "metadata", "annotations", "deployment.kubernetes.io/revision")
        for rs in snapshot.replicasets:
            rs_revision = dig(rs, "metadata", "annotations", "deployment.kubernetes.io/revision")
            if controller_of(rs) == ("Deployment", name_of(dep)) and rs_revision == revision:
                current[("ReplicaSet", name_of(rs))] = index.workloads[f"Deployment/{name_of(dep)}"]
    for kind, objects in (("StatefulSet", snapshot.statefulsets), ("Job", snapshot.jobs)):
        for obj in objects:
            current[(kind, name_of(obj))] = index.workloads[f"{kind}/{name_of(obj)}"]
    latest: dict[str, tuple[Workload, Obj]] = {}
    for event in events:
        key = (str(dig(event, "involvedObject", "kind")), str(dig(event, "involvedObject", "name")))
        if event.get("reason") == "FailedCreate" and key in current:
            latest[current[key].ref] = (current[key], event)
    findings = []
    for w, event in latest.values():
        have, want = len(index.pods.get(w.ref, [])), w.replicas or 1
        if have >= want:
            continue
        message = str(event.get("message") or "").strip()
        if "PodSecurity" in message or "securityContext" in message:
            fix = ("make the pod template meet the namespace's Pod Security level (restricted: "
                   "runAsNonRoot, no privilege escalation, drop ALL capabilities, seccomp "
                   f"RuntimeDefault), then {w.deploy}")
        elif "quota" in message:
            fix = f"raise the namespace's ResourceQuota or lower the requests, then {w.deploy}"
        elif "serviceaccount" in message.lower():
            fix = f"create the ServiceAccount or fix serviceAccountName, then {w.deploy}"
        else:
            fix = f"fix what the controller's message says, then {w.deploy}"
        findings.append(Finding(
            "cannot create pods", w.ref,
            f"{w.title} has {have} of {want} pods: {event.get('reason')}: {message}", fix,
        ))
    return findings


def _bare_ref(ref: str) -> str:
    """An image reference without Docker Hub's implicit prefixes."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _repository(ref: str) -> str:
    name = _bare_ref(ref).split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _short_id(image_id: str) -> str:
    return "sha256:" + image_id.rsplit("sha256:", 1)[-1][:12] if image_id else "(no id recorded)"


def image_findings(
    snapshot: Snapshot, index: Index, images: Mapping[str, ImageRef], target: Target
) -> list[Finding]:
    """Deployments whose image is not the one `inv build` recorded in .state/images.json:
    another reference in the spec (`kubectl set image`), or another image ID behind the
    recorded tag on the node."""
    by_repository = {_repository(img.ref): img for img in images.values()}
    findings: list[Finding] = []
    for dep in snapshot.deployments:
        w = index.workloads[f"Deployment/{name_of(dep)}"]
        pods = index.pods.get(w.ref, [])
        for container in dig(dep, "spec", "template", "spec", "containers", default=[]):
            cname, image = str(container.get("name")), str(container.get("image") or "")
            recorded = (images.get(w.component) or images.get(cname)
                        or by_repository.get(_repository(image)))
            if recorded is None:
                continue
            if _bare_ref(image) != _bare_ref(recorded.ref):
                running = sum(
                    1 for p in pods for c in dig(p, "spec", "containers", default=[])
                    if c.get("name") == cname and c.get("image") == image
                )
                findings.append(Finding(
                    "image differs from the build", w.ref,
                    f"container {cname} of {w.title} is set to {image}, but `inv build` "
                    f"recorded {recorded.ref} ({_short_id(recorded.image_id)}) in "
                    f".state/images.json; {running} of {len(pods)} pods run {image}",
                    f"{w.deploy} puts the recorded image back (the Deployment was changed "
                    "outside the workflow, e.g. `kubectl set image`); to ship other code, "
                    "change it and `inv build` first",
                ))
                continue
            other = []
            for pod in pods:
                for status in dig(pod, "status", "containerStatuses", default=[]):
                    seen = str(status.get("imageID") or "")
                    # a registry digest (repo@sha256:...) is not the local image ID: not comparable
                    if (status.get("name") != cname or not seen or "@" in seen
                            or not recorded.image_id):
                        continue
                    if not image_id_matches(seen, recorded.image_id):
                        other.append((name_of(pod), seen))
            if other:
                pod_name, seen = other[0]
                findings.append(Finding(
                    "image differs from the build", w.ref,
                    f"{len(other)} of {len(pods)} pods of {w.title} run {recorded.ref} as image "
                    f"{_short_id(seen)} (e.g. pod {pod_name}), but `inv build` recorded "
                    f"{_short_id(recorded.image_id)}: the node holds another image under that tag",
                    f"deliver the recorded image again: {delivery_step(target)}, then "
                    f"{w.deploy}; never rebuild under an old tag (`inv build` tags by content)",
                ))
    return findings
