"""The diagnosis engine: the built-in doctor of `inv aiops`, and the explanation a
failed `inv deploy` / `inv deploy --helm` prints. No AI tool, no network beyond the API.

`collect()` is the only part that talks to the cluster: through `kube.Kube` it reads
one namespace (objects as the API's JSON) into a `Snapshot`, plus the logs, memory
peaks and node usage the rules need. `diagnose()` turns a snapshot into findings:

1. events that no longer describe a live object are dropped;
2. each pod's symptoms (a container that cannot start, crashes or is OOMKilled, a pod
   the scheduler cannot place, a failing probe) are grouped per workload (Deployment,
   StatefulSet, Job, or a bare Pod): one finding per cause, counting the pods it hits;
3. object causes are added: a workload scaled to 0, a ReplicaSet that cannot create
   pods, an image that differs from what `inv build` recorded, an unbound PVC, a
   failed Job, a Service without endpoints;
4. consequences are folded under their cause, the cause first: a dependent's failing
   readiness probe when what it needs is down, a Service whose pods are all down,
   pods waiting for an unbound PVC.

Every fix hint is written for the cluster provider in use (`Target`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from todo_deploy.gates import Check, Verdict
from todo_deploy.kube import KubeError, exec_in_pod, image_id_matches, quantity

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings
    from todo_deploy.kube import Kube

Obj = dict[str, Any]

LOG_LINES = 8
PULL_REASONS = ("ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName")
CONFIG_REASONS = ("CreateContainerConfigError",)
PEAK_FILES = (
    "/sys/fs/cgroup/memory.peak",  # cgroup v2
    "/sys/fs/cgroup/memory.max_usage_in_bytes",
    "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
)
COMPONENT = "app.kubernetes.io/component"
# What each of the app's components needs before it can be ready: the backend's
# /ready queries the database, the migration Job waits for it. (The frontend's
# /readyz does not ask the backend.)
NEEDS: dict[str, tuple[str, ...]] = {"backend": ("database",), "migration": ("database",)}
REPLICA_SETTINGS = {"backend": "BACKEND_REPLICAS", "frontend": "FRONTEND_REPLICAS"}
CHART_VALUES = "helm/todo-chatbot/values.yaml"
# Causes before what they cause; a kind is ranked by the first prefix it starts with.
ORDER = (
    "scaled to 0", "cannot create pods", "image differs from the build", "missing config",
    "image not found", "unbound PVC", "Pending", "OOMKilled", "CrashLoopBackOff", "failed Job",
    "Startup probe failing", "Liveness probe failing", "Readiness probe failing",
    "Service without endpoints",
)
CONSEQUENCE_KINDS = ("Readiness probe failing", "Startup probe failing", "Service without endpoints")


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

    @classmethod
    def of(cls, settings: Settings) -> Target:
        return cls(settings.cluster_provider, settings.image_registry, settings.minikube_profile)


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


def _containers(pod: Obj) -> dict[str, Obj]:
    spec = pod.get("spec") or {}
    items = list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
    return {str(c.get("name")): c for c in items}


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in dig(pod, "status", "conditions", default=[])
    )


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text))  # 3.11 reads the "Z" suffix
    except ValueError:
        return None


def _event_time(event: Obj) -> datetime | None:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        if event.get(key):
            return _time(event[key])
    return _time(dig(event, "metadata", "creationTimestamp"))


def _events_for(events: Iterable[Obj], kind: str, name: str) -> list[Obj]:
    found = [
        e for e in events
        if dig(e, "involvedObject", "kind") == kind and dig(e, "involvedObject", "name") == name
    ]
    return sorted(found, key=lambda e: _event_time(e) or datetime.min.replace(tzinfo=UTC))


def _live(pod: Obj) -> bool:
    return not dig(pod, "metadata", "deletionTimestamp")


def fresh_events(snapshot: Snapshot) -> list[Obj]:
    """Events about objects that exist now, and not older than them: a replaced pod's
    FailedScheduling or a deleted Job's BackoffLimitExceeded says nothing any more."""
    alive: dict[tuple[str, str], tuple[str, datetime | None]] = {}
    for kind, objects in (
        ("Pod", [p for p in snapshot.pods if _live(p)]),
        ("ReplicaSet", snapshot.replicasets), ("Deployment", snapshot.deployments),
        ("StatefulSet", snapshot.statefulsets), ("Job", snapshot.jobs),
        ("PersistentVolumeClaim", snapshot.pvcs), ("Service", snapshot.services),
    ):
        for obj in objects:
            meta = obj.get("metadata") or {}
            alive[(kind, str(meta.get("name")))] = (
                str(meta.get("uid") or ""), _time(meta.get("creationTimestamp"))
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
        when = _event_time(event)
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


def _controller(obj: Obj) -> tuple[str, str] | None:
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
        rs_owner = {name_of(rs): _controller(rs) for rs in snapshot.replicasets}
        of_pod: dict[str, Workload] = {}
        pods: dict[str, list[Obj]] = {ref: [] for ref in workloads}
        for pod in snapshot.pods:
            if not _live(pod):
                continue
            owner = _controller(pod)
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


def _requests(pod_or_template: Obj, resource: str) -> Decimal:
    """What one pod requests of `resource` (its containers' requests, else their limits)."""
    total = Decimal(0)
    for spec in dig(pod_or_template, "spec", "containers", default=[]):
        value = dig(spec, "resources", "requests", resource) or dig(
            spec, "resources", "limits", resource
        )
        total += quantity(value)
    return total


# --- fix hints that depend on the provider ---------------------------------------------------


def delivery_step(target: Target) -> str:
    """The step that puts a built image where this provider's kubelet looks for it."""
    if target.registry:
        return (f"`inv build --push` (IMAGE_REGISTRY={target.registry}) so the kubelet "
                "pulls it from the registry")
    return {
        "minikube": "`inv build` then `inv cluster` (it runs `minikube image load` so the "
        "node's runtime has the image)",
        "kind": "`inv build` then `inv cluster` (it runs `kind load docker-image` into the "
        "kind node)",
        "docker-desktop": "`inv build` (Docker Desktop's Kubernetes shares the Docker daemon: "
        "the exact tag must be in `docker images`)",
    }.get(
        target.provider,
        "`inv build` then `inv cluster`: a node that shares the Docker daemon needs the exact "
        "tag in `docker images`; a node that does not needs IMAGE_REGISTRY and "
        "`inv build --push`",
    )


def delivery_fix(reason: str, image: str, target: Target) -> str:
    """How to make a missing image reach the kubelet, for this provider."""
    if target.registry:
        never = (
            " and let the kubelet pull it: imagePullPolicy Never only looks in the node's "
            "local images, so deploy with IfNotPresent"
            if reason == "ErrImageNeverPull"
            else ""
        )
        return (
            f"push the image: `inv build --push` (IMAGE_REGISTRY={target.registry}){never}, "
            "then `inv deploy`; check the tag in the manifest matches the pushed one"
        )
    policy = ""
    if reason == "ErrImageNeverPull":
        policy = " (imagePullPolicy Never: the kubelet only looks in the node's local images)"
    elif reason in ("ImagePullBackOff", "ErrImagePull"):
        policy = " (the kubelet tried to pull it from a registry and could not)"
    return (f"make {image} present where the kubelet looks{policy}: {delivery_step(target)}, "
            "then `inv deploy`")


def grow_hint(resources: Iterable[str], target: Target) -> str:
    """How to give the cluster more of `resources` on this provider."""
    wanted = [r for r in resources if r in ("cpu", "memory")]
    what = " and ".join(wanted) or "room"
    if target.provider == "minikube" and wanted:
        knobs = "/".join({"cpu": "MINIKUBE_CPUS", "memory": "MINIKUBE_MEMORY"}[r] for r in wanted)
        return (f"give minikube more {what}: {knobs}, then `minikube delete -p "
                f"{target.minikube_profile}` and `inv cluster`")
    return {
        "minikube": "give minikube a bigger node (`minikube delete`, then `inv cluster`)",
        "kind": f"give Docker more {what}: the kind node is a container sharing the Docker "
        "host's resources (Docker Desktop: Settings → Resources)",
        "docker-desktop": f"give Docker Desktop more {what}: Settings → Resources, then "
        "Apply & restart",
    }.get(target.provider, f"add a node with more {what} to the cluster (its administrator's step)")


def capacity_fix(
    shortages: Mapping[str, tuple[Decimal, Decimal, Decimal]],
    workload: Workload,
    scheduled: int,
    target: Target,
) -> str:
    """shortages: resource -> (per pod, allocatable on the largest node, free there)."""
    steps: list[str] = []
    where = (f"the {workload.component}'s resources.requests in {CHART_VALUES}"
             if workload.component in ("backend", "frontend", "database")
             else f"the requests of {workload.title}'s containers")
    knob = REPLICA_SETTINGS.get(workload.component)
    too_big = {r: v for r, v in shortages.items() if v[0] > v[1]}
    if too_big:
        below = ", ".join(f"{r} below {fmt_amount(r, v[1])}" for r, v in too_big.items())
        steps.append(f"each pod asks for more than a node has: lower {where} ({below})")
    else:
        fits = min(
            (scheduled + int(free // per) if per > 0 else scheduled)
            for per, _, free in shortages.values()
        )
        if knob and workload.replicas:
            steps.append(f"run fewer replicas: {knob} (now {workload.replicas}; about "
                         f"{max(fits, 0)} fit next to what the node already runs)")
        per_pod = ", ".join(f"{fmt_amount(r, v[0])} {r}" for r, v in shortages.items())
        steps.append(f"lower {where} ({per_pod} per pod)")
    steps.append(grow_hint(shortages, target))
    return "; or ".join(steps)


def storage_hint(target: Target) -> str:
    return {
        "minikube": "`minikube addons enable default-storageclass storage-provisioner`",
        "kind": "kind ships a default class `standard` (rancher local-path): check "
        "`kubectl get storageclass`",
        "docker-desktop": "Docker Desktop ships a default class `hostpath`: check "
        "`kubectl get storageclass`",
    }.get(target.provider, "install a provisioner or ask the cluster's administrator")


# --- per-pod rules: symptoms -----------------------------------------------------------------


@dataclass(frozen=True)
class Symptom:
    """What is wrong with one pod; pods of a workload with the same kind and key share
    one finding."""

    kind: str
    key: str
    evidence: str
    fix: str
    weight: int = 0  # the most telling pod is shown (logs read, most restarts)
    subject: str = ""  # a failing probe's path; the claims a pending pod waits for


def _exit_meaning(code: int | None) -> str:
    meanings = {
        1: "the application failed",
        2: "misuse of a command or bad arguments",
        126: "the command is not executable",
        127: "the command was not found in the image",
        137: "killed by SIGKILL (out of memory or a failed liveness probe)",
        139: "segmentation fault",
        143: "terminated by SIGTERM",
    }
    if code is None:
        return "unknown exit"
    return meanings.get(code, "the process exited with an error")


def _log_excerpt(logs: Mapping[str, str], pod: str, container: str) -> str:
    text = logs.get(f"{pod}/{container}", "").strip()
    if not text:
        return "no log output"
    lines = text.splitlines()[-LOG_LINES:]
    return "last log lines: " + " | ".join(line.strip() for line in lines)


def _container_state(status: Obj) -> tuple[str, str, Obj | None]:
    """(waiting reason, waiting message, the most relevant terminated state)."""
    waiting = dig(status, "state", "waiting", default={})
    terminated = dig(status, "state", "terminated") or dig(status, "lastState", "terminated")
    return str(waiting.get("reason") or ""), str(waiting.get("message") or ""), terminated


_SECRET_MISSING = re.compile(r'(secret|configmap) "([^"]+)" not found', re.IGNORECASE)
_KEY_MISSING = re.compile(r"couldn't find key (\S+) in (Secret|ConfigMap) ([^\s/]+)/(\S+)")


def _config_fix(container: str, message: str, deploy: str) -> str:
    key = _KEY_MISSING.search(message)
    if key:
        name, kind = key.group(4), key.group(2)
        return (
            f"add key {key.group(1)} to {kind}/{name} ({deploy} creates the app's Secrets "
            f"from .env), or remove the reference to it from container {container}"
        )
    missing = _SECRET_MISSING.search(message)
    if missing:
        kind = "Secret" if missing.group(1).lower() == "secret" else "ConfigMap"
        return (
            f"create {kind}/{missing.group(2)} in the namespace ({deploy} creates the app's "
            f"Secrets from .env and its ConfigMap from the settings), or fix the name that "
            f"container {container} refers to"
        )
    return f"fix the env/envFrom/volume references of container {container}"


def _oom(
    pod: Obj, container: str, spec: Obj, peaks: Mapping[str, int], restarts: int
) -> tuple[str, str]:
    limit_text = dig(spec, "resources", "limits", "memory")
    limit = quantity(limit_text) if limit_text else None
    limit_shown = fmt_bytes(limit) if limit is not None else "no limit set (node memory)"
    peak = peaks.get(f"{name_of(pod)}/{container}")
    peak_shown = f"peak {fmt_bytes(peak)}" if peak else "peak unknown: at least the limit"
    evidence = (
        f"OOMKilled: container {container} was killed for memory (exit 137): memory limit "
        f"{limit_shown}, {peak_shown}; restarted {restarts} times"
    )
    suggestion = fmt_bytes(limit * 2) if limit is not None else "a value above the peak"
    fix = (
        f"raise resources.limits.memory of container {container} above its peak (e.g. "
        f"{suggestion}; the requests too) in the chart values / manifests and `inv deploy`, "
        "or make the process use less memory"
    )
    return evidence, fix


def container_symptoms(
    pod: Obj,
    target: Target | None = None,
    *,
    logs: Mapping[str, str] | None = None,
    peaks: Mapping[str, int] | None = None,
    deploy: str = "`inv deploy`",
) -> list[Symptom]:
    """Per container, the first of: config error, image not found, OOMKilled, crash loop."""
    target, logs, peaks = target or Target(), logs or {}, peaks or {}
    found: list[Symptom] = []
    pod_name = name_of(pod)
    namespace = dig(pod, "metadata", "namespace")
    in_ns = f" -n {namespace}" if namespace else ""
    specs = _containers(pod)
    restart_policy = dig(pod, "spec", "restartPolicy", default="Always")
    for status in _statuses(pod):
        cname = str(status.get("name"))
        reason, message, terminated = _container_state(status)
        image = str(specs.get(cname, {}).get("image") or status.get("image", ""))
        restarts = int(status.get("restartCount") or 0)
        has_log = int(f"{pod_name}/{cname}" in logs)
        if reason in CONFIG_REASONS:
            found.append(Symptom(
                "missing config", f"{cname}|{message}",
                f"container {cname}: CreateContainerConfigError: {message}",
                _config_fix(cname, message, deploy),
            ))
        elif reason in PULL_REASONS:
            found.append(Symptom(
                "image not found", f"{cname}|{reason}|{image}",
                f"container {cname}: {reason} for image {image}: {message}".strip(": "),
                delivery_fix(reason, image, target), subject=image,
            ))
        elif terminated and terminated.get("reason") == "OOMKilled":
            evidence, fix = _oom(pod, cname, specs.get(cname, {}), peaks, restarts)
            found.append(Symptom("OOMKilled", cname, evidence, fix, weight=restarts))
        elif reason == "CrashLoopBackOff" or (
            terminated
            and restart_policy == "Always"
            and restarts > 0
            and int(terminated.get("exitCode") or 0) != 0
            and not status.get("ready")
        ):
            raw = (terminated or {}).get("exitCode")
            code = int(raw) if raw is not None else None
            found.append(Symptom(
                "CrashLoopBackOff", f"{cname}|{code}",
                f"CrashLoopBackOff: container {cname} exits with code {code} "
                f"({_exit_meaning(code)}), restarted {restarts} times; "
                f"{_log_excerpt(logs, pod_name, cname)}",
                f"fix what the log of container {cname} shows (`kubectl logs{in_ns} {pod_name} "
                f"-c {cname} --previous`), e.g. a missing setting or an unreachable dependency, "
                f"then {deploy}",
                weight=has_log * 1000 + restarts,
            ))
    return found


_INSUFFICIENT = re.compile(r"Insufficient ([a-zA-Z0-9/-]+(?:\.[a-zA-Z0-9/-]+)*)")


def _largest_node(
    nodes: list[Obj], requested: Mapping[str, Mapping[str, Decimal]], resource: str
) -> tuple[Decimal, Decimal]:
    """(allocatable, free) of `resource` on the node that allocates the most of it."""
    best = (Decimal(0), Decimal(0))
    for node in nodes:
        allocatable = quantity(dig(node, "status", "allocatable", resource))
        if allocatable >= best[0]:
            used = requested.get(name_of(node), {}).get(resource, Decimal(0))
            best = (allocatable, max(allocatable - used, Decimal(0)))
    return best


def pending_symptom(
    pod: Obj,
    events: list[Obj],
    nodes: list[Obj],
    pvcs: list[Obj],
    target: Target | None = None,
    *,
    requested: Mapping[str, Mapping[str, Decimal]] | None = None,
    workload: Workload | None = None,
    scheduled: int = 0,
) -> Symptom | None:
    """A pod the scheduler cannot place: which resource (per pod vs the node), or a PVC."""
    if dig(pod, "status", "phase") != "Pending":
        return None
    conditions = dig(pod, "status", "conditions", default=[])
    scheduled_condition = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
    if scheduled_condition.get("status") != "False":
        return None
    pod_name = name_of(pod)
    failed = [e for e in _events_for(events, "Pod", pod_name)
              if e.get("reason") == "FailedScheduling"]
    source = failed[-1] if failed else scheduled_condition
    message = str(source.get("message") or "").strip()
    pending_claims = {name_of(p) for p in pvcs if dig(p, "status", "phase") == "Pending"}
    claims = [
        str(dig(v, "persistentVolumeClaim", "claimName"))
        for v in dig(pod, "spec", "volumes", default=[])
        if dig(v, "persistentVolumeClaim", "claimName")
    ]
    unbound = [c for c in claims if c in pending_claims]
    short = list(dict.fromkeys(_INSUFFICIENT.findall(message)))
    if short:
        shortages: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        parts = []
        for resource in short:
            per_pod = _requests(pod, resource)
            allocatable, free = _largest_node(nodes, requested or {}, resource)
            shortages[resource] = (per_pod, allocatable, free)
            parts.append(
                f"each pod requests {fmt_amount(resource, per_pod)} {resource}, the largest "
                f"node allocates {fmt_amount(resource, allocatable)}"
                + (f" of which {fmt_amount(resource, free)} is free" if requested else "")
            )
        owner = workload or Workload("Pod", pod_name)
        return Symptom(
            f"Pending: insufficient {', '.join(short)}", ",".join(short),
            f"Pending, Insufficient {', '.join(short)}: " + "; ".join(parts)
            + f" (scheduler: {message})",
            capacity_fix(shortages, owner, scheduled, target or Target()),
        )
    if unbound or ("unbound" in message and "PersistentVolumeClaim" in message):
        names = ", ".join(f"PersistentVolumeClaim/{c}" for c in unbound) or "its PVC"
        return Symptom(
            "Pending: unbound PVC", names,
            f"Pending: waits for {names} to bind; {message}".strip("; "),
            f"make {names} bind (see its finding), and the pod schedules by itself",
            subject=",".join(unbound),
        )
    if message:
        return Symptom(
            "Pending: unschedulable", re.sub(r"\d+", "N", message),
            f"Pending: FailedScheduling: {message}",
            "make the pod fit a node: check its nodeSelector/affinity/tolerations against "
            "the nodes' labels and taints",
        )
    return None


_PROBE = re.compile(r"^(Readiness|Liveness|Startup) probe failed: ?(.*)$", re.DOTALL)
_STATUS = re.compile(r"statuscode: (\d+)")


def _endpoint(probe: Obj, container: Obj) -> tuple[str, str]:
    """(how the probe asks, the path or port a person would call it by); a named port is
    shown as the number it names."""
    named = {str(p.get("name")): p.get("containerPort") for p in container.get("ports") or []}
    http = probe.get("httpGet")
    if http:
        scheme = str(http.get("scheme") or "HTTP").lower()
        path = str(http.get("path") or "/")
        return f"{scheme} GET :{named.get(str(http.get('port')), http.get('port'))}{path}", path
    tcp = probe.get("tcpSocket")
    if tcp:
        port = named.get(str(tcp.get("port")), tcp.get("port"))
        return f"TCP :{port}", f"port {port}"
    command = dig(probe, "exec", "command")
    if command:
        shown = " ".join(str(c) for c in command)
        return f"exec {shown}", shown
    return "(probe not found in the pod spec)", "its probe"


def probe_symptoms(pod: Obj, events: list[Obj]) -> list[Symptom]:
    """Failing probes (Unhealthy events) of containers that are not ready or were restarted."""
    found: list[Symptom] = []
    pod_name = name_of(pod)
    specs = _containers(pod)
    statuses = {str(s.get("name")): s for s in _statuses(pod)}
    seen: set[tuple[str, str]] = set()
    for event in reversed(_events_for(events, "Pod", pod_name)):
        if event.get("reason") != "Unhealthy":
            continue
        match = _PROBE.match(str(event.get("message") or "").strip())
        if not match:
            continue
        kind, answer = match.group(1), match.group(2).strip()
        cmatch = re.search(r"containers\{([^}]+)\}", str(dig(event, "involvedObject", "fieldPath", default="")))
        cname = cmatch.group(1) if cmatch else next(iter(specs), "")
        if (cname, kind) in seen:
            continue
        seen.add((cname, kind))
        status = statuses.get(cname, {})
        if kind == "Startup":  # once started, a start-up's failed probes are history
            failing = status.get("started") is False or (
                status.get("started") is None and not status.get("ready"))
        elif kind == "Readiness":
            failing = not status.get("ready")
        else:
            failing = int(status.get("restartCount") or 0) > 0
        if not failing:
            continue
        spec = specs.get(cname, {})
        endpoint, path = _endpoint(dig(spec, f"{kind.lower()}Probe", default={}), spec)
        code = _STATUS.search(answer)
        said = f"answered HTTP {code.group(1)}" if code else f"answered: {answer[:200]}"
        count = int(event.get("count") or 1)
        times = f"{count} failure" + ("s" if count != 1 else "")
        found.append(Symptom(
            f"{kind} probe failing", f"{cname}|{code.group(1) if code else 'no answer'}",
            f"not ready: container {cname}: {kind.lower()} probe {endpoint} {said} "
            f"({times})" if kind != "Liveness" else
            f"container {cname}: liveness probe {endpoint} {said} ({times})",
            f"make {endpoint.split(' ', 1)[-1]} answer 200 in container {cname}, or point "
            f"its {kind.lower()}Probe at the endpoint the app serves (backend: /health, "
            "/ready, /started on 8000; frontend: /healthz, /readyz on 3000)",
            subject=path,
        ))
    return found


# --- object rules ----------------------------------------------------------------------------


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
        last = _events_for(events, "PersistentVolumeClaim", name)
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


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


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
        matching = [p for p in live if _matches(selector, labels_of(p))]
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
        failed = int(dig(job, "status", "failed", default=0))
        backoff = int(dig(job, "spec", "backoffLimit", default=6))
        if failed_condition is None and failed <= backoff:
            continue
        name = name_of(job)
        job_pods = sorted(
            (p for p in pods if labels_of(p).get("job-name") == name),
            key=lambda p: str(dig(p, "metadata", "creationTimestamp", default="")),
        )
        detail = ""
        if job_pods:
            pod = job_pods[-1]
            pod_name = name_of(pod)
            exits: list[str] = []
            detail_logs = "no log output"
            for status in _statuses(pod):
                _, _, terminated = _container_state(status)
                if terminated is not None:
                    exits.append(f"{status.get('name')} exited {terminated.get('exitCode')}")
                detail_logs = _log_excerpt(logs, pod_name, str(status.get("name")))
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
            if _controller(rs) == ("Deployment", name_of(dep)) and rs_revision == revision:
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


# --- the engine ------------------------------------------------------------------------------


@dataclass
class _Item:
    """A finding while the engine works on it."""

    finding: Finding
    workload: Workload | None = None
    subject: str = ""  # from the symptom: a probe's path, the claims a pod waits for
    consequences: list[str] = field(default_factory=list)
    because: list[str] = field(default_factory=list)  # "the backend's /ready fails because …"
    into: _Item | None = None  # folded into this cause

    @property
    def rank(self) -> int:
        kind = self.finding.kind
        return next((i for i, prefix in enumerate(ORDER) if kind.startswith(prefix)), len(ORDER))

    def root(self) -> _Item:
        item = self
        while item.into is not None:
            item = item.into
        return item

    def fold(self, cause: _Item, consequence: str, because: str = "") -> None:
        cause = cause.root()
        if cause is self:
            return
        self.into = cause
        cause.consequences.append(consequence)
        if because and because not in cause.because:
            cause.because.append(because)


def _grouped(
    index: Index, symptoms: list[tuple[Obj, Symptom]], observed_at: str
) -> list[_Item]:
    """One item per (workload, kind, key), counting the pods it affects."""
    groups: dict[tuple[str, str, str], list[tuple[Obj, Symptom]]] = {}
    for pod, symptom in symptoms:
        w = index.of_pod[name_of(pod)]
        groups.setdefault((w.ref, symptom.kind, symptom.key), []).append((pod, symptom))
    items = []
    for (ref, kind, _), members in groups.items():
        w = index.workloads[ref]
        pod, shown = max(members, key=lambda m: m[1].weight)
        if w.kind == "Pod":
            evidence = shown.evidence
        else:
            total = max(len(index.pods.get(ref, [])), len(members))
            evidence = f"{len(members)} of {total} pods of {w.title}: {shown.evidence}"
            if len(members) > 1 or total > 1:
                evidence += f" (e.g. pod {name_of(pod)})"
        items.append(_Item(Finding(kind, w.ref, evidence, shown.fix, observed_at), w,
                           subject=shown.subject))
    return items


def _needs(component: str) -> list[str]:
    """What `component` needs, nearest first (transitively)."""
    order: list[str] = []
    todo = list(NEEDS.get(component, ()))
    while todo:
        need = todo.pop(0)
        if need not in order and need != component:
            order.append(need)
            todo.extend(NEEDS.get(need, ()))
    return order


def _fold(items: list[_Item], index: Index, snapshot: Snapshot) -> list[Finding]:
    items.sort(key=lambda i: i.rank)
    by_ref: dict[str, list[_Item]] = {}
    for item in items:
        by_ref.setdefault(item.finding.object, []).append(item)

    # Pods waiting for an unbound claim: the claim is the cause.
    for item in items:
        if item.finding.kind == "Pending: unbound PVC":
            for claim in filter(None, item.subject.split(",")):
                cause = next(iter(by_ref.get(f"PersistentVolumeClaim/{claim}", [])), None)
                if cause is not None:
                    item.fold(cause, item.finding.evidence)
                    break

    # A workload is down when none of its pods is ready and something other than a
    # probe explains it (or it has no replica at all).
    down: dict[str, _Item] = {}
    for ref, own in by_ref.items():
        w = own[0].workload
        if w is None or not w.component:
            continue
        ready = sum(1 for p in index.pods.get(ref, []) if _ready(p))
        cause = next((i for i in own if i.finding.kind not in CONSEQUENCE_KINDS), None)
        if cause is not None and ready == 0:
            down.setdefault(w.component, cause)

    for item in items:
        w, kind = item.workload, item.finding.kind
        if item.into is not None or w is None:
            continue
        if kind in ("Readiness probe failing", "Startup probe failing", "failed Job"):
            own_cause = next((i for i in by_ref.get(w.ref, []) if i.rank < item.rank
                              and i.finding.kind not in CONSEQUENCE_KINDS), None)
            if own_cause is not None:
                item.fold(own_cause, item.finding.evidence)
                continue
            need = next((n for n in _needs(w.component) if n in down), None)
            if need is not None:
                what = (f"the {w.component}'s {item.subject or 'probe'} fails"
                        if kind != "failed Job" else f"the {w.component} Job failed")
                item.fold(down[need], item.finding.evidence, f"{what} because the {need} is down")

    # A Service without endpoints is explained by what keeps its pods from being ready.
    services = {name_of(s): s for s in snapshot.services}
    for item in items:
        if item.finding.kind != "Service without endpoints" or item.into is not None:
            continue
        selector = dig(services.get(item.finding.object.split("/", 1)[1], {}), "spec", "selector",
                       default={})
        for ref, w in index.workloads.items():
            pods = index.pods.get(ref, [])
            if not (_matches(selector, dict(w.template_labels))
                    or any(_matches(selector, labels_of(p)) for p in pods)):
                continue
            cause = next(iter(by_ref.get(ref, [])), None)
            if cause is not None:
                item.fold(cause, f"{item.finding.object} has no ready endpoint")
                break

    findings = []
    for item in items:
        if item.into is not None:
            continue
        f = item.finding
        evidence = f.evidence
        if item.because:
            evidence += "; " + "; ".join(item.because)
        elif f.kind == "scaled to 0" and item.workload and item.workload.component:
            evidence += f"; the {item.workload.component} is down"
        if item.consequences:
            evidence += CAUSES + "; ".join(item.consequences)
        findings.append(Finding(f.kind, f.object, evidence, f.fix, f.observed_at,
                                tuple(item.consequences)))
    return findings


def scaled_to_zero(index: Index, namespace: str = "", observed_at: str = "") -> list[_Item]:
    items = []
    in_ns = f" -n {namespace}" if namespace else ""
    for w in index.workloads.values():
        if w.replicas == 0:
            items.append(_Item(Finding(
                "scaled to 0", w.ref, f"{w.title} has 0 replicas",
                f"scale it back: re-run {w.deploy} (it applies the configured replicas), or "
                f"`kubectl{in_ns} scale {w.kind.lower()} {w.name} --replicas=1`",
                observed_at,
            ), w))
    return items


def diagnose(
    snapshot: Snapshot,
    target: Target | None = None,
    images: Mapping[str, ImageRef] | None = None,
) -> list[Finding]:
    """Every finding, causes first, consequences folded under them."""
    target = target or Target()
    at = snapshot.observed_at
    events = fresh_events(snapshot)
    index = Index.of(snapshot)
    symptoms: list[tuple[Obj, Symptom]] = []
    for pod in snapshot.pods:
        if not _live(pod):
            continue
        w = index.of_pod[name_of(pod)]
        placed = sum(1 for p in index.pods.get(w.ref, []) if dig(p, "spec", "nodeName"))
        found = container_symptoms(pod, target, logs=snapshot.logs, peaks=snapshot.peaks,
                                   deploy=w.deploy)
        pending = pending_symptom(pod, events, snapshot.nodes, snapshot.pvcs, target,
                                  requested=snapshot.requested, workload=w, scheduled=placed)
        found += [pending] if pending else []
        found += probe_symptoms(pod, events)
        symptoms += [(pod, s) for s in found]
    items = _grouped(index, symptoms, at) + scaled_to_zero(index, snapshot.namespace, at)

    def attach(findings: list[Finding]) -> None:
        for f in findings:
            stamped = Finding(f.kind, f.object, f.evidence, f.fix, at, f.consequences)
            items.append(_Item(stamped, index.workloads.get(f.object)))

    attach(failed_create_findings(snapshot, index, events))
    attach(image_findings(snapshot, index, images or {}, target))
    attach(pvc_findings(snapshot.pvcs, snapshot.storage_classes, events, target))
    attach(service_findings(snapshot.services, snapshot.endpoints, snapshot.pods))
    attach(job_findings(snapshot.jobs, snapshot.pods, snapshot.logs))
    return _fold(items, index, snapshot)


# --- what the collector needs beyond the object lists ----------------------------------------


def log_requests(pods: Iterable[Obj], index: Index | None = None) -> list[tuple[str, str, bool]]:
    """(pod, container, previous) whose logs explain a crash or a failed Job: one pod per
    workload and container (the one restarted most, else the newest)."""
    best: dict[tuple[str, str], tuple[int, str, str, bool]] = {}
    for pod in pods:
        if not _live(pod):
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
            if (owner, cname) not in best or candidate[:2] > best[(owner, cname)][:2]:
                best[(owner, cname)] = candidate
    return [(pod, cname, previous) for (_, cname), (_, _, pod, previous) in best.items()]


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
            per_node[resource] = per_node.get(resource, Decimal(0)) + _requests(pod, resource)
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
    index = Index.of(snapshot)
    for pod, container, previous in log_requests(snapshot.pods, index):
        text = kube.pod_logs(namespace, pod, container, tail=40, previous=previous)
        if not text.startswith("(no logs:"):
            snapshot.logs[f"{pod}/{container}"] = text
    for pod, container in peak_requests(snapshot.pods, index):
        peak = _read_peak(kube, namespace, pod, container)
        if peak:
            snapshot.peaks[f"{pod}/{container}"] = peak
    if _short_of_resources(snapshot.pods):
        snapshot.requested = node_requests(items("v1", "Pod", ""))
    return snapshot


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


# --- as text: a failed rollout's explanation -------------------------------------------------


def _selector_labels(selector: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(",") if "=" in part)


def pod_overview(snapshot: Snapshot, selectors: Iterable[str] = ("",)) -> list[str]:
    """One line per workload with pods under one of `selectors` (equality label
    selectors): how many pods, how many ready, their phases."""
    wanted = [_selector_labels(s) for s in selectors]
    index = Index.of(snapshot)
    lines = []
    for ref, pods in sorted(index.pods.items()):
        pods = [p for p in pods if any(_matches(w, labels_of(p)) for w in wanted)]
        if not pods:
            continue
        phases: dict[str, int] = {}
        for pod in pods:
            phase = str(dig(pod, "status", "phase", default="?"))
            phases[phase] = phases.get(phase, 0) + 1
        shown = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items()))
        ready = sum(1 for p in pods if _ready(p))
        lines.append(f"{ref}: {len(pods)} pod(s), {ready} ready ({shown})")
    return lines


def render_text(findings: list[Finding], overview: list[str] | None = None) -> str:
    lines = [f"  {line}" for line in overview or []]
    if not findings:
        lines.append("  the doctor found no cause: the pods may still be starting (a slow "
                     "image pull or start-up); `inv logs` shows what they print")
    for number, f in enumerate(findings, 1):
        lines.append(f"{number}. {f.kind}: {f.object}")
        lines.append(f"   {f.headline}")
        lines.extend(f"   causes: {c}" for c in f.consequences)
        lines.append(f"   fix: {f.fix}")
    return "\n".join(lines)


def explain(
    kube: Kube,
    settings: Settings,
    namespace: str,
    selectors: str | Iterable[str] = "",
    images: Mapping[str, ImageRef] | None = None,
    collector: Callable[[Kube, str], Snapshot] = collect,
) -> str:
    """The doctor's findings about `namespace` as text, for a failed rollout's message;
    first how the pods under `selectors` (the workloads that failed) stand."""
    try:
        snapshot = collector(kube, namespace)
    except (KubeError, NamespaceMissing) as exc:
        return f"the doctor could not read namespace {namespace}: {exc}"
    findings = diagnose(snapshot, Target.of(settings), images)
    header = f"the doctor's diagnosis of namespace {namespace} ({snapshot.observed_at}):"
    shown = [selectors] if isinstance(selectors, str) else list(selectors)
    return header + "\n" + render_text(findings, pod_overview(snapshot, shown or [""]))
