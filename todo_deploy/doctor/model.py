"""What the doctor works on: a namespace's objects (the API's JSON), who owns each pod,
which events still describe something that exists, and the findings it produces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from todo_deploy.gates import Check, Verdict
from todo_deploy.kube import quantity

if TYPE_CHECKING:
    from todo_deploy.config import Settings

Obj = dict[str, Any]
COMPONENT = "app.kubernetes.io/component"
CAUSES = "; this causes: "


@dataclass(frozen=True)
class Finding:
    kind: str
    object: str  # "Kind/name": the workload, PVC, Job or Service it is about
    evidence: str  # complete: the cause, then what it causes
    fix: str
    observed_at: str = ""
    consequences: tuple[str, ...] = ()  # what this cause explains, folded in (also in evidence)

    @property
    def headline(self) -> str:
        """The evidence without its consequences."""
        return self.evidence.split(CAUSES, 1)[0]

    def check(self) -> Check:
        return Check(f"{self.kind}: {self.object}", Verdict.FAIL, self.evidence, self.fix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "object": self.object, "evidence": self.evidence,
            "fix": self.fix, "observed_at": self.observed_at,
            "consequences": list(self.consequences),
        }


@dataclass(frozen=True)
class Target:
    """What the fix hints depend on: the cluster provider and how images reach the node."""

    provider: str = "minikube"
    registry: str = ""
    minikube_profile: str = "todo-chatbot"
    # component label -> the configured replica count (a scale-back hint names it)
    replicas: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Target:
        replicas = (("backend", settings.backend_replicas), ("frontend", settings.frontend_replicas))
        return cls(settings.cluster_provider, settings.image_registry, settings.minikube_profile,
                   replicas)

    def configured_replicas(self, component: str) -> int:
        """How many replicas the settings give `component` (1 when they do not say)."""
        return dict(self.replicas).get(component, 1)


@dataclass
class Snapshot:
    namespace: str
    observed_at: str = ""
    pods: list[Obj] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    endpoints: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)
    pvcs: list[Obj] = field(default_factory=list)
    storage_classes: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    deployments: list[Obj] = field(default_factory=list)
    statefulsets: list[Obj] = field(default_factory=list)
    replicasets: list[Obj] = field(default_factory=list)
    hpas: list[Obj] = field(default_factory=list)
    metrics_api: bool | None = None  # metrics.k8s.io served; read only when there are HPAs
    ingresses: list[Obj] = field(default_factory=list)
    ingress_classes: list[Obj] = field(default_factory=list)  # read only when there are Ingresses
    # "pod/container" -> last log lines (the previous container's when it restarted)
    logs: dict[str, str] = field(default_factory=dict)
    # "pod/container" -> peak memory in bytes, read from the container's cgroup
    peaks: dict[str, int] = field(default_factory=dict)
    # node -> resource -> what the pods placed there request (every namespace); read
    # only when a pod waits for lack of a resource
    requested: dict[str, dict[str, Decimal]] = field(default_factory=dict)


class NamespaceMissing(Exception):
    pass


# --- reading objects (the API's JSON) --------------------------------------------------------


def dig(obj: Any, *keys: str, default: Any = None) -> Any:
    """obj[k1][k2]...; `default` when a key is absent or null."""
    for key in keys:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return default
        obj = obj[key]
    return obj


def name_of(obj: Obj) -> str:
    return str(dig(obj, "metadata", "name", default=""))


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(dig(obj, "metadata", "labels", default={}))


def containers_of(pod: Obj) -> dict[str, Obj]:
    spec = pod.get("spec") or {}
    items = list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
    return {str(c.get("name")): c for c in items}


def statuses_of(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in dig(pod, "status", "conditions", default=[])
    )


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text))  # 3.11 reads the "Z" suffix
    except ValueError:
        return None


def event_time(event: Obj) -> datetime | None:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        if event.get(key):
            return parse_time(event[key])
    return parse_time(dig(event, "metadata", "creationTimestamp"))


def events_for(events: Iterable[Obj], kind: str, name: str) -> list[Obj]:
    found = [
        e for e in events
        if dig(e, "involvedObject", "kind") == kind and dig(e, "involvedObject", "name") == name
    ]
    return sorted(found, key=lambda e: event_time(e) or datetime.min.replace(tzinfo=UTC))


def is_live(pod: Obj) -> bool:
    return not dig(pod, "metadata", "deletionTimestamp")


def fresh_events(snapshot: Snapshot) -> list[Obj]:
    """Events about objects that exist now, and not older than them: a replaced pod's
    FailedScheduling or a deleted Job's BackoffLimitExceeded says nothing any more."""
    alive: dict[tuple[str, str], tuple[str, datetime | None]] = {}
    for kind, objects in (
        ("Pod", [p for p in snapshot.pods if is_live(p)]),
        ("ReplicaSet", snapshot.replicasets), ("Deployment", snapshot.deployments),
        ("StatefulSet", snapshot.statefulsets), ("Job", snapshot.jobs),
        ("PersistentVolumeClaim", snapshot.pvcs), ("Service", snapshot.services),
    ):
        for obj in objects:
            meta = obj.get("metadata") or {}
            alive[(kind, str(meta.get("name")))] = (
                str(meta.get("uid") or ""), parse_time(meta.get("creationTimestamp"))
            )
    kept = []
    for event in snapshot.events:
        involved = event.get("involvedObject") or {}
        key = (str(involved.get("kind")), str(involved.get("name")))
        if key not in alive:
            continue
        uid, created = alive[key]
        if involved.get("uid") and uid and involved["uid"] != uid:
            continue  # a namesake made again (a StatefulSet's pod-0, a Job re-run)
        when = event_time(event)
        if when is not None and created is not None and when < created:
            continue
        kept.append(event)
    return kept


# --- workloads: what owns each pod -----------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment, StatefulSet, Job, DaemonSet, ReplicaSet, or Pod (a bare pod)
    name: str
    component: str = ""  # app.kubernetes.io/component
    helm: bool = False  # managed by Helm: `inv deploy --helm` made it
    replicas: int | None = None
    template_labels: tuple[tuple[str, str], ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def title(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def deploy(self) -> str:
        return "`inv deploy --helm`" if self.helm else "`inv deploy`"


def _workload(kind: str, obj: Obj) -> Workload:
    labels = labels_of(obj)
    template = dig(obj, "spec", "template", "metadata", "labels", default={})
    replicas = None
    if kind in ("Deployment", "StatefulSet"):
        replicas = int(dig(obj, "spec", "replicas", default=1))
    return Workload(
        kind, name_of(obj), labels.get(COMPONENT, ""),
        labels.get("app.kubernetes.io/managed-by") == "Helm", replicas,
        tuple(sorted(template.items())),
    )


def controller_of(obj: Obj) -> tuple[str, str] | None:
    owners = dig(obj, "metadata", "ownerReferences", default=[])
    chosen = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    return (str(chosen.get("kind")), str(chosen.get("name"))) if chosen else None


@dataclass
class Index:
    workloads: dict[str, Workload]  # ref -> workload (every one, also those without pods)
    of_pod: dict[str, Workload]  # live pod name -> its workload
    pods: dict[str, list[Obj]]  # workload ref -> its live pods (running or about to)

    @classmethod
    def of(cls, snapshot: Snapshot) -> Index:
        workloads: dict[str, Workload] = {}
        for kind, objects in (("Deployment", snapshot.deployments),
                              ("StatefulSet", snapshot.statefulsets), ("Job", snapshot.jobs)):
            for obj in objects:
                w = _workload(kind, obj)
                workloads[w.ref] = w
        rs_owner = {name_of(rs): controller_of(rs) for rs in snapshot.replicasets}
        of_pod: dict[str, Workload] = {}
        pods: dict[str, list[Obj]] = {ref: [] for ref in workloads}
        for pod in snapshot.pods:
            if not is_live(pod):
                continue
            owner = controller_of(pod)
            if owner and owner[0] == "ReplicaSet" and rs_owner.get(owner[1]):
                owner = rs_owner[owner[1]]
            labels = labels_of(pod)
            if owner is None:
                w = Workload("Pod", name_of(pod), labels.get(COMPONENT, ""))
            else:
                w = workloads.get(f"{owner[0]}/{owner[1]}") or Workload(
                    owner[0], owner[1], labels.get(COMPONENT, ""))
            workloads.setdefault(w.ref, w)
            of_pod[name_of(pod)] = w
            finished = dig(pod, "status", "phase") in ("Succeeded", "Failed")
            if w.kind == "Job" or not finished:  # an evicted pod is no replica any more
                pods.setdefault(w.ref, []).append(pod)
        return cls(workloads, of_pod, pods)


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- amounts ---------------------------------------------------------------------------------


def fmt_bytes(value: Decimal | int) -> str:
    number = Decimal(value)
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if number >= size:
            return f"{number / size:.1f}".removesuffix(".0") + unit
    return f"{number}B"


def fmt_amount(resource: str, value: Decimal) -> str:
    if resource == "memory" or resource.endswith("storage"):
        return fmt_bytes(value)
    if resource == "cpu" and value < 1:
        return f"{int(value * 1000)}m"
    return f"{value.normalize():f}"


def requests_of(pod_or_template: Obj, resource: str) -> Decimal:
    """What one pod requests of `resource` (its containers' requests, else their limits)."""
    total = Decimal(0)
    for spec in dig(pod_or_template, "spec", "containers", default=[]):
        value = dig(spec, "resources", "requests", resource) or dig(
            spec, "resources", "limits", resource
        )
        total += quantity(value)
    return total
