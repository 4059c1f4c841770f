"""The only part of the doctor that talks to the cluster: through `kube.Kube` (the one
access layer) it reads a namespace into a Snapshot, with the logs, memory peaks and node
usage the rules need, one pod per workload where one tells as much as all."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from todo_deploy.doctor.autoscaling import HPA_VERSIONS, METRICS_GROUP
from todo_deploy.doctor.ingress import INGRESS_VERSION
from todo_deploy.doctor.model import (
    Index,
    NamespaceMissing,
    Obj,
    Snapshot,
    dig,
    is_live,
    name_of,
    requests_of,
)
from todo_deploy.kube import NO_LOGS, KubeError, exec_in_pod

if TYPE_CHECKING:
    from todo_deploy.kube import Kube

PEAK_FILES = (
    "/sys/fs/cgroup/memory.peak",  # cgroup v2
    "/sys/fs/cgroup/memory.max_usage_in_bytes",
    "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
)


def log_candidates(
    pods: Iterable[Obj], index: Index | None = None
) -> list[list[tuple[str, str, bool]]]:
    """Per workload and container whose logs explain a crash or a failed Job, where to read
    them, best first: each crashed pod (most restarts, then newest) by its previous
    instance's log, then its current one's. A log can be gone or unreadable for a moment
    (the kubelet replacing the instance, a loaded node): the next candidate is read then."""
    found: dict[tuple[str, str], list[tuple[int, str, str, bool]]] = {}
    for pod in pods:
        if not is_live(pod):
            continue
        owner = index.of_pod[name_of(pod)].ref if index else name_of(pod)
        created = str(dig(pod, "metadata", "creationTimestamp", default=""))
        for status in dig(pod, "status", "containerStatuses", default=[]):
            cname = str(status.get("name"))
            restarts = int(status.get("restartCount") or 0)
            last, now = dig(status, "lastState", "terminated"), dig(status, "state", "terminated")
            if restarts and last is not None:
                candidate = (restarts, created, name_of(pod), True)
            elif now is not None and int(now.get("exitCode") or 0) != 0:
                candidate = (0, created, name_of(pod), False)
            else:
                continue
            found.setdefault((owner, cname), []).append(candidate)
    out = []
    for (_, cname), crashed in found.items():
        ranked = sorted(crashed, key=lambda c: c[:2], reverse=True)
        out.append([(pod, cname, previous) for _, _, pod, prev in ranked
                    for previous in dict.fromkeys((prev, False))])
    return out


LOG_TRIES = 4  # log reads per workload and container at most


def first_log(kube: Kube, namespace: str, candidates: list[tuple[str, str, bool]]) -> dict[str, str]:
    """{"pod/container": text} from the first candidate with log output; when none has any,
    the best candidate's answer (empty, or "(no logs: why)")."""
    answers: list[tuple[str, str]] = []
    for pod, container, previous in candidates:
        text = kube.pod_logs(namespace, pod, container, tail=40, previous=previous)
        if text.strip() and not text.startswith(NO_LOGS):
            return {f"{pod}/{container}": text}
        answers.append((f"{pod}/{container}", text))
    return dict(answers[:1])


def peak_requests(pods: Iterable[Obj], index: Index | None = None) -> list[tuple[str, str]]:
    """(pod, container) that were OOMKilled and run again now (their cgroup is readable):
    one per workload and container."""
    chosen: dict[tuple[str, str], str] = {}
    for pod in pods:
        for status in dig(pod, "status", "containerStatuses", default=[]):
            oom = dig(status, "lastState", "terminated", "reason") == "OOMKilled"
            if oom and dig(status, "state", "running") is not None:
                owner = index.of_pod[name_of(pod)].ref if index else name_of(pod)
                chosen.setdefault((owner, str(status.get("name"))), name_of(pod))
    return [(pod, cname) for (_, cname), pod in chosen.items()]


def _short_of_resources(pods: Iterable[Obj]) -> bool:
    return any(
        "Insufficient" in str(c.get("message") or "")
        for p in pods for c in dig(p, "status", "conditions", default=[])
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    )


def node_requests(pods: Iterable[Obj]) -> dict[str, dict[str, Decimal]]:
    """node -> resource -> what the pods placed there request."""
    used: dict[str, dict[str, Decimal]] = {}
    for pod in pods:
        node = dig(pod, "spec", "nodeName")
        if not node or dig(pod, "status", "phase") in ("Succeeded", "Failed"):
            continue
        per_node = used.setdefault(node, {})
        for resource in ("cpu", "memory"):
            per_node[resource] = per_node.get(resource, Decimal(0)) + requests_of(pod, resource)
    return used


# --- the collector: the only part that talks to the cluster ----------------------------------


def collect(kube: Kube, namespace: str, *, now: datetime | None = None) -> Snapshot:
    """Read the namespace's objects, the logs, peaks and node usage the rules need."""
    if kube.get("v1", "Namespace", namespace) is None:
        raise NamespaceMissing(namespace)
    observed = (now or datetime.now(UTC)).isoformat(timespec="seconds")

    def items(api_version: str, kind: str, where: str = namespace) -> list[Obj]:
        return kube.list(api_version, kind, where)

    snapshot = Snapshot(
        namespace=namespace,
        observed_at=observed,
        pods=items("v1", "Pod"),
        events=items("v1", "Event"),
        services=items("v1", "Service"),
        endpoints=items("v1", "Endpoints"),
        jobs=items("batch/v1", "Job"),
        pvcs=items("v1", "PersistentVolumeClaim"),
        storage_classes=items("storage.k8s.io/v1", "StorageClass", ""),
        nodes=items("v1", "Node", ""),
        deployments=items("apps/v1", "Deployment"),
        statefulsets=items("apps/v1", "StatefulSet"),
        replicasets=items("apps/v1", "ReplicaSet"),
    )
    snapshot.hpas = _hpas(kube, namespace)
    snapshot.ingresses = items(INGRESS_VERSION, "Ingress")
    if snapshot.ingresses:
        snapshot.ingress_classes = items(INGRESS_VERSION, "IngressClass", "")
    if snapshot.hpas:
        snapshot.metrics_api = kube.served(METRICS_GROUP, "PodMetrics") is not None
    index = Index.of(snapshot)
    for candidates in log_candidates(snapshot.pods, index):
        snapshot.logs.update(first_log(kube, namespace, candidates[:LOG_TRIES]))
    for pod, container in peak_requests(snapshot.pods, index):
        peak = _read_peak(kube, namespace, pod, container)
        if peak:
            snapshot.peaks[f"{pod}/{container}"] = peak
    if _short_of_resources(snapshot.pods):
        snapshot.requested = node_requests(items("v1", "Pod", ""))
    return snapshot


def _hpas(kube: Kube, namespace: str) -> list[Obj]:
    """The namespace's HPAs in the newest version the cluster serves (its conditions)."""
    for version in HPA_VERSIONS:
        try:
            return kube.list(version, "HorizontalPodAutoscaler", namespace)
        except KubeError as exc:
            if exc.status != 404:  # 404: this version is not served here
                raise
    return []


def _read_peak(kube: Kube, namespace: str, pod: str, container: str) -> int | None:
    """The container's peak memory from its cgroup, via exec; None when unreadable."""
    for path in PEAK_FILES:
        try:
            code, out, _ = exec_in_pod(kube.api, namespace, pod, container, ["cat", path], timeout=10)
        except Exception:  # noqa: BLE001 - exec refused, no `cat`, container gone: peak unknown
            return None
        if code == 0 and out.strip().isdigit():
            return int(out.strip())
    return None
