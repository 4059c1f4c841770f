"""The built-in doctor: no AI tool, no network beyond the cluster's API.

The rules are pure functions over plain data: objects as the API returns them
(raw JSON, camelCase, as `kubectl get -o json` prints them) or the client's
`to_dict()` (snake_case); both spellings are read. `collect()` is the only part
that talks to the cluster: it gathers pods, events, logs, services, endpoints,
jobs, PVCs, StorageClasses and nodes of one namespace into a `Snapshot`, and
`diagnose()` turns a snapshot into findings, each with its object, evidence and fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from todo_deploy.gates import Check, Verdict

if TYPE_CHECKING:
    from todo_deploy.config import Settings

Obj = dict[str, Any]

LOG_LINES = 8
PULL_REASONS = ("ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName")
CONFIG_REASONS = ("CreateContainerConfigError",)
PEAK_FILES = (
    "/sys/fs/cgroup/memory.peak",  # cgroup v2
    "/sys/fs/cgroup/memory.max_usage_in_bytes",
    "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
)


@dataclass(frozen=True)
class Finding:
    kind: str
    object: str
    evidence: str
    fix: str

    def check(self) -> Check:
        return Check(f"{self.kind}: {self.object}", Verdict.FAIL, self.evidence, self.fix)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Snapshot:
    namespace: str
    pods: list[Obj] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    endpoints: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)
    pvcs: list[Obj] = field(default_factory=list)
    storage_classes: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    # "pod/container" -> last log lines (the previous container's when it restarted)
    logs: dict[str, str] = field(default_factory=dict)
    # "pod/container" -> peak memory in bytes, read from the container's cgroup
    peaks: dict[str, int] = field(default_factory=dict)


class NamespaceMissing(Exception):
    pass


# --- reading objects in either spelling ------------------------------------------------------


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def g(obj: Any, *keys: str, default: Any = None) -> Any:
    """obj[k1][k2]..., each key tried camelCase first, then snake_case; `default` if absent."""
    for key in keys:
        if not isinstance(obj, dict):
            return default
        if key in obj and obj[key] is not None:
            obj = obj[key]
        elif _snake(key) in obj and obj[_snake(key)] is not None:
            obj = obj[_snake(key)]
        else:
            return default
    return obj


def name_of(obj: Obj) -> str:
    return str(g(obj, "metadata", "name", default=""))


def _labels(obj: Obj) -> dict[str, str]:
    return dict(g(obj, "metadata", "labels", default={}) or {})


def _containers(pod: Obj) -> dict[str, Obj]:
    spec = g(pod, "spec", default={})
    items = list(g(spec, "initContainers", default=[])) + list(g(spec, "containers", default=[]))
    return {str(c.get("name")): c for c in items}


def _statuses(pod: Obj) -> list[Obj]:
    status = g(pod, "status", default={})
    return list(g(status, "initContainerStatuses", default=[])) + list(
        g(status, "containerStatuses", default=[])
    )


def _events_for(events: Iterable[Obj], kind: str, name: str) -> list[Obj]:
    found = [
        e
        for e in events
        if g(e, "involvedObject", "kind") == kind and g(e, "involvedObject", "name") == name
    ]
    return sorted(found, key=_event_time)


def _event_time(event: Obj) -> str:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = g(event, key)
        if value:
            return str(value)
    return str(g(event, "metadata", "creationTimestamp", default=""))


# --- quantities ------------------------------------------------------------------------------

_SUFFIX: dict[str, Decimal] = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60), "n": Decimal("1e-9"), "u": Decimal("1e-6"),
    "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")


def quantity(text: Any) -> Decimal | None:
    """A Kubernetes quantity ('500m', '32Mi', '2', '1e3') as a number, or None."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation:
        return None


def fmt_bytes(value: Decimal | int) -> str:
    number = Decimal(value)
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if number >= size:
            return f"{number / size:.1f}".removesuffix(".0") + unit
    return f"{number}B"


def fmt_amount(resource: str, value: Decimal) -> str:
    if resource == "memory" or resource.endswith("storage"):
        return fmt_bytes(value)
    if resource == "cpu":
        return f"{value.normalize():f}" if value >= 1 else f"{int(value * 1000)}m"
    return f"{value.normalize():f}"


# --- the rules -------------------------------------------------------------------------------


def delivery_fix(reason: str, image: str, provider: str, registry: str) -> str:
    """Which step puts the image where this provider's kubelet looks for it."""
    if registry:
        never = (
            " and let the kubelet pull it: imagePullPolicy Never only looks in the node's "
            "local images, so deploy with IfNotPresent"
            if reason == "ErrImageNeverPull"
            else ""
        )
        return (
            f"push the image: `inv build --push` (IMAGE_REGISTRY={registry}){never}, then "
            "`inv deploy`; check the tag in the manifest matches the pushed one"
        )
    step = {
        "minikube": "`inv build` then `inv cluster` (it runs `minikube image load` so the "
        "node's runtime has the image)",
        "kind": "`inv build` then `inv cluster` (it runs `kind load docker-image` into the "
        "kind node)",
        "docker-desktop": "`inv build` (Docker Desktop's Kubernetes shares the Docker daemon: "
        "the exact tag must be in `docker images`)",
    }.get(
        provider,
        "`inv build` then `inv cluster`: a node that shares the Docker daemon needs the exact "
        "tag in `docker images`; a node that does not needs IMAGE_REGISTRY and "
        "`inv build --push`",
    )
    policy = ""
    if reason == "ErrImageNeverPull":
        policy = " (imagePullPolicy Never: the kubelet only looks in the node's local images)"
    elif reason in ("ImagePullBackOff", "ErrImagePull"):
        policy = " (the kubelet tried to pull it from a registry and could not)"
    return f"make {image} present where the kubelet looks{policy}: {step}, then `inv deploy`"


def _exit_meaning(code: int | None, signal: int | None = None) -> str:
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


def _log_excerpt(logs: dict[str, str], pod: str, container: str) -> str:
    text = logs.get(f"{pod}/{container}", "").strip()
    if not text:
        return "no log output"
    lines = text.splitlines()[-LOG_LINES:]
    return "last log lines: " + " | ".join(line.strip() for line in lines)


def _container_state(status: Obj) -> tuple[str, str, Obj | None]:
    """(waiting reason, waiting message, the most relevant terminated state)."""
    waiting = g(status, "state", "waiting", default={}) or {}
    terminated = g(status, "state", "terminated") or g(status, "lastState", "terminated")
    return str(g(waiting, "reason", default="")), str(g(waiting, "message", default="")), terminated


def pod_container_findings(
    pods: Iterable[Obj],
    *,
    logs: dict[str, str] | None = None,
    peaks: dict[str, int] | None = None,
    provider: str = "minikube",
    registry: str = "",
) -> list[Finding]:
    """Per container, the first of: config error, image not found, OOMKilled, crash loop."""
    logs, peaks = logs or {}, peaks or {}
    findings: list[Finding] = []
    for pod in pods:
        pod_name = name_of(pod)
        obj = f"Pod/{pod_name}"
        specs = _containers(pod)
        restart_policy = g(pod, "spec", "restartPolicy", default="Always")
        for status in _statuses(pod):
            cname = str(status.get("name"))
            reason, message, terminated = _container_state(status)
            image = str(g(specs.get(cname, {}), "image", default=status.get("image", "")))
            restarts = int(g(status, "restartCount", default=0) or 0)
            if reason in CONFIG_REASONS:
                findings.append(Finding("missing config", obj, *_config_error(cname, message)))
            elif reason in PULL_REASONS:
                findings.append(
                    Finding(
                        "image not found",
                        obj,
                        f"container {cname}: {reason} for image {image}: {message}".strip(": "),
                        delivery_fix(reason, image, provider, registry),
                    )
                )
            elif terminated and g(terminated, "reason") == "OOMKilled":
                findings.append(
                    Finding("OOMKilled", obj, *_oom(pod, cname, specs.get(cname, {}), peaks))
                )
            elif reason == "CrashLoopBackOff" or (
                terminated
                and restart_policy == "Always"
                and restarts > 0
                and int(g(terminated, "exitCode", default=0) or 0) != 0
                and not g(status, "ready", default=False)
            ):
                code = g(terminated or {}, "exitCode")
                code = int(code) if code is not None else None
                findings.append(
                    Finding(
                        "CrashLoopBackOff",
                        obj,
                        f"container {cname} exits with code {code} ({_exit_meaning(code)}), "
                        f"restarted {restarts} times; {_log_excerpt(logs, pod_name, cname)}",
                        f"fix what the log of container {cname} shows (`kubectl logs "
                        f"{pod_name} -c {cname} --previous`), e.g. a missing setting or an "
                        "unreachable dependency, then `inv deploy`",
                    )
                )
    return findings


_SECRET_MISSING = re.compile(r'(secret|configmap) "([^"]+)" not found', re.IGNORECASE)
_KEY_MISSING = re.compile(r"couldn't find key (\S+) in (Secret|ConfigMap) ([^\s/]+)/(\S+)")


def _config_error(container: str, message: str) -> tuple[str, str]:
    evidence = f"container {container}: CreateContainerConfigError: {message}"
    key = _KEY_MISSING.search(message)
    if key:
        name, kind = key.group(4), key.group(2)
        return evidence, (
            f"add key {key.group(1)} to {kind}/{name} (for the app's Secrets `inv deploy` "
            f"creates them from .env), or remove the reference to it from container {container}"
        )
    missing = _SECRET_MISSING.search(message)
    if missing:
        kind = "Secret" if missing.group(1).lower() == "secret" else "ConfigMap"
        return evidence, (
            f"create {kind}/{missing.group(2)} in the namespace (`inv deploy` creates the app's "
            f"Secrets from .env and its ConfigMap from the settings), or fix the name that "
            f"container {container} refers to"
        )
    return evidence, f"fix the env/envFrom/volume references of container {container}"


def _oom(pod: Obj, container: str, spec: Obj, peaks: dict[str, int]) -> tuple[str, str]:
    limit_text = g(spec, "resources", "limits", "memory")
    limit = quantity(limit_text) if limit_text else None
    limit_shown = fmt_bytes(limit) if limit is not None else "no limit set (node memory)"
    peak = peaks.get(f"{name_of(pod)}/{container}")
    peak_shown = f"peak {fmt_bytes(peak)}" if peak else "peak unknown: at least the limit"
    restarts = next(
        (int(g(s, "restartCount", default=0) or 0) for s in _statuses(pod) if s.get("name") == container),
        0,
    )
    evidence = (
        f"container {container} was OOMKilled (exit 137): memory limit {limit_shown}, "
        f"{peak_shown}; restarted {restarts} times"
    )
    suggestion = fmt_bytes(limit * 2) if limit is not None else "a value above the peak"
    fix = (
        f"raise resources.limits.memory of container {container} above its peak (e.g. "
        f"{suggestion}; the requests too) in the chart values / manifests and `inv deploy`, "
        "or make the process use less memory"
    )
    return evidence, fix


def _requests(pod: Obj, resource: str) -> Decimal:
    total = Decimal(0)
    for spec in g(pod, "spec", "containers", default=[]):
        value = g(spec, "resources", "requests", resource) or g(
            spec, "resources", "limits", resource
        )
        amount = quantity(value) if value is not None else None
        total += amount or 0
    return total


_INSUFFICIENT = re.compile(r"Insufficient ([a-zA-Z0-9/-]+(?:\.[a-zA-Z0-9/-]+)*)")


def pending_findings(
    pods: Iterable[Obj], events: list[Obj], nodes: list[Obj], pvcs: list[Obj]
) -> list[Finding]:
    """Pods the scheduler cannot place: which resource, requested vs allocatable; or a PVC."""
    findings: list[Finding] = []
    pending_pvcs = {name_of(p) for p in pvcs if g(p, "status", "phase") == "Pending"}
    for pod in pods:
        if g(pod, "status", "phase") != "Pending":
            continue
        conditions = g(pod, "status", "conditions", default=[]) or []
        unscheduled = any(
            c.get("type") == "PodScheduled" and c.get("status") == "False" for c in conditions
        )
        if not unscheduled:
            continue
        pod_name = name_of(pod)
        scheduled_events = [
            e for e in _events_for(events, "Pod", pod_name) if g(e, "reason") == "FailedScheduling"
        ]
        message = (
            str(g(scheduled_events[-1], "message", default=""))
            if scheduled_events
            else str(next((c.get("message", "") for c in conditions if c.get("type") == "PodScheduled"), ""))
        )
        claims = [
            str(g(v, "persistentVolumeClaim", "claimName"))
            for v in g(pod, "spec", "volumes", default=[]) or []
            if g(v, "persistentVolumeClaim", "claimName")
        ]
        unbound = [c for c in claims if c in pending_pvcs]
        short = _INSUFFICIENT.findall(message)
        if short:
            parts, fixes = [], []
            for resource in dict.fromkeys(short):
                requested = _requests(pod, resource)
                allocatable = [
                    quantity(g(n, "status", "allocatable", resource, default="0")) or Decimal(0)
                    for n in nodes
                ]
                biggest = max(allocatable, default=Decimal(0))
                parts.append(
                    f"{resource}: requests {fmt_amount(resource, requested)} vs "
                    f"{fmt_amount(resource, biggest)} allocatable on the largest node"
                )
                knob = {"cpu": "MINIKUBE_CPUS", "memory": "MINIKUBE_MEMORY"}.get(resource, "")
                grow = f" or give the cluster more ({knob}, then `inv cluster`)" if knob else ""
                fixes.append(
                    f"lower resources.requests.{resource} of {pod_name}'s containers below "
                    f"{fmt_amount(resource, biggest)} (minus what other pods request){grow}"
                )
            findings.append(
                Finding(
                    f"Pending: insufficient {', '.join(dict.fromkeys(short))}",
                    f"Pod/{pod_name}",
                    f"FailedScheduling: {message.strip()}; " + "; ".join(parts),
                    "; ".join(fixes),
                )
            )
        elif unbound or "unbound" in message and "PersistentVolumeClaim" in message:
            names = ", ".join(f"PersistentVolumeClaim/{c}" for c in unbound) or "its PVC"
            findings.append(
                Finding(
                    "Pending: unbound PVC",
                    f"Pod/{pod_name}",
                    f"waits for {names} to bind; {message.strip()}".strip("; "),
                    f"make {names} bind (see its finding), and the pod schedules by itself",
                )
            )
        elif message:
            findings.append(
                Finding(
                    "Pending: unschedulable",
                    f"Pod/{pod_name}",
                    f"FailedScheduling: {message.strip()}",
                    "make the pod fit a node: check its nodeSelector/affinity/tolerations "
                    "against the nodes' labels and taints",
                )
            )
    return findings


def _is_default(storage_class: Obj) -> bool:
    annotations = g(storage_class, "metadata", "annotations", default={}) or {}
    return any(
        annotations.get(key) == "true"
        for key in (
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        )
    )


def pvc_findings(
    pvcs: Iterable[Obj], storage_classes: list[Obj], events: list[Obj]
) -> list[Finding]:
    """Unbound PersistentVolumeClaims: a missing StorageClass, no default class, a failed provision."""
    findings: list[Finding] = []
    classes = {name_of(sc): sc for sc in storage_classes}
    defaults = [name for name, sc in classes.items() if _is_default(sc)]
    available = ", ".join(f"{n} (default)" if n in defaults else n for n in classes) or "none"
    for pvc in pvcs:
        if g(pvc, "status", "phase") != "Pending":
            continue
        name = name_of(pvc)
        obj = f"PersistentVolumeClaim/{name}"
        wanted = g(pvc, "spec", "storageClassName")
        last = _events_for(events, "PersistentVolumeClaim", name)
        event_text = f"; event {g(last[-1], 'reason')}: {g(last[-1], 'message')}" if last else ""
        if wanted is None and not defaults:
            findings.append(Finding(
                "unbound PVC", obj,
                f"no storageClassName and the cluster has no default StorageClass "
                f"(classes: {available}){event_text}",
                "mark a StorageClass default (minikube: `minikube addons enable "
                "default-storageclass storage-provisioner`) or set storageClassName",
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
            mode = g(classes.get(class_name, {}), "volumeBindingMode", default="Immediate")
            warnings = [e for e in last if g(e, "type") == "Warning"]
            if mode == "WaitForFirstConsumer" or not warnings:
                continue  # binds when a pod uses it, or still provisioning without complaint
            findings.append(Finding(
                "unbound PVC", obj,
                f"StorageClass {class_name} could not provide a volume: "
                f"{g(warnings[-1], 'reason')}: {g(warnings[-1], 'message')}",
                f"check the provisioner of StorageClass {class_name} "
                f"({g(classes[class_name], 'provisioner', default='?')}) and its logs",
            ))
    return findings


_PROBE = re.compile(r"^(Readiness|Liveness|Startup) probe failed: ?(.*)$", re.DOTALL)
_STATUS = re.compile(r"statuscode: (\d+)")


def _endpoint(probe: Obj, pod: Obj) -> str:
    http = g(probe, "httpGet")
    if http:
        scheme = str(g(http, "scheme", default="HTTP")).lower()
        return f"{scheme} GET :{g(http, 'port')}{g(http, 'path', default='/')}"
    tcp = g(probe, "tcpSocket")
    if tcp:
        return f"TCP :{g(tcp, 'port')}"
    command = g(probe, "exec", "command")
    if command:
        return "exec " + " ".join(str(c) for c in command)
    return "(probe not found in the pod spec)"


def probe_findings(pods: Iterable[Obj], events: list[Obj]) -> list[Finding]:
    """Failing probes (Unhealthy events) of containers that are not ready or were restarted."""
    findings: list[Finding] = []
    for pod in pods:
        pod_name = name_of(pod)
        specs = _containers(pod)
        statuses = {str(s.get("name")): s for s in _statuses(pod)}
        seen: set[tuple[str, str]] = set()
        for event in reversed(_events_for(events, "Pod", pod_name)):
            if g(event, "reason") != "Unhealthy":
                continue
            match = _PROBE.match(str(g(event, "message", default="")).strip())
            if not match:
                continue
            kind, answer = match.group(1), match.group(2).strip()
            field_path = str(g(event, "involvedObject", "fieldPath", default=""))
            cmatch = re.search(r"containers\{([^}]+)\}", field_path)
            cname = cmatch.group(1) if cmatch else next(iter(specs), "")
            if (cname, kind) in seen:
                continue
            seen.add((cname, kind))
            status = statuses.get(cname, {})
            failing = (
                not g(status, "ready", default=False)
                if kind in ("Readiness", "Startup")
                else int(g(status, "restartCount", default=0) or 0) > 0
            )
            if not failing:
                continue
            probe = g(specs.get(cname, {}), f"{kind.lower()}Probe", default={})
            endpoint = _endpoint(probe, pod)
            code = _STATUS.search(answer)
            said = f"answered HTTP {code.group(1)}" if code else f"answered: {answer[:200]}"
            count = int(g(event, "count", default=1) or 1)
            findings.append(Finding(
                f"{kind} probe failing",
                f"Pod/{pod_name}",
                f"container {cname}: {kind.lower()} probe {endpoint} {said} "
                f"({count} failures; event: {answer[:200]})",
                f"make {endpoint.split(' ', 1)[-1]} answer 200 in container {cname}, or point "
                f"its {kind.lower()}Probe at the endpoint the app serves (backend: /health, "
                "/ready, /started on 8000; frontend: /healthz, /readyz on 3000)",
            ))
    return findings


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def service_findings(
    services: Iterable[Obj], endpoints: list[Obj], pods: list[Obj]
) -> list[Finding]:
    """Services with no ready endpoint: a selector that matches nothing, or no Ready pod."""
    findings: list[Finding] = []
    by_name = {name_of(e): e for e in endpoints}
    live = [p for p in pods if g(p, "status", "phase") not in ("Succeeded", "Failed")]
    for service in services:
        selector = g(service, "spec", "selector", default={}) or {}
        if not selector or g(service, "spec", "type") == "ExternalName":
            continue
        name = name_of(service)
        subsets = g(by_name.get(name, {}), "subsets", default=[]) or []
        ready = sum(len(g(s, "addresses", default=[]) or []) for s in subsets)
        if ready:
            continue
        shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        matching = [p for p in live if _matches(selector, _labels(p))]
        if not matching:
            label_sets = sorted(
                {",".join(f"{k}={v}" for k, v in sorted(_labels(p).items())) for p in live}
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


def job_findings(jobs: Iterable[Obj], pods: list[Obj], logs: dict[str, str]) -> list[Finding]:
    """Failed Jobs (e.g. the migration Job), with their pod's exit code and last log lines."""
    findings: list[Finding] = []
    for job in jobs:
        conditions = g(job, "status", "conditions", default=[]) or []
        failed_condition = next(
            (c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None
        )
        failed = int(g(job, "status", "failed", default=0) or 0)
        backoff = int(g(job, "spec", "backoffLimit", default=6) or 0)
        if failed_condition is None and failed <= backoff:
            continue
        name = name_of(job)
        job_pods = sorted(
            (p for p in pods if _labels(p).get("job-name") == name),
            key=lambda p: str(g(p, "metadata", "creationTimestamp", default="")),
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
                    exits.append(f"{status.get('name')} exited {g(terminated, 'exitCode')}")
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
            f"itself), then `kubectl delete job {name} -n <namespace>` and `inv deploy` to run it "
            "again",
        ))
    return findings


def diagnose(snapshot: Snapshot, *, provider: str = "minikube", registry: str = "") -> list[Finding]:
    """Every finding of every rule, in a stable order."""
    findings = [
        *pod_container_findings(
            snapshot.pods, logs=snapshot.logs, peaks=snapshot.peaks,
            provider=provider, registry=registry,
        ),
        *pending_findings(snapshot.pods, snapshot.events, snapshot.nodes, snapshot.pvcs),
        *pvc_findings(snapshot.pvcs, snapshot.storage_classes, snapshot.events),
        *probe_findings(snapshot.pods, snapshot.events),
        *service_findings(snapshot.services, snapshot.endpoints, snapshot.pods),
        *job_findings(snapshot.jobs, snapshot.pods, snapshot.logs),
    ]
    return findings


# --- what the collector needs beyond the object lists ----------------------------------------


def log_requests(pods: Iterable[Obj]) -> list[tuple[str, str, bool]]:
    """(pod, container, previous) whose logs explain a crash or a failed Job."""
    wanted: list[tuple[str, str, bool]] = []
    for pod in pods:
        for status in g(pod, "status", "containerStatuses", default=[]) or []:
            cname = str(status.get("name"))
            restarted = int(g(status, "restartCount", default=0) or 0) > 0
            last = g(status, "lastState", "terminated")
            now = g(status, "state", "terminated")
            if restarted and last is not None:
                wanted.append((name_of(pod), cname, True))
            elif now is not None and int(g(now, "exitCode", default=0) or 0) != 0:
                wanted.append((name_of(pod), cname, False))
    return wanted


def peak_requests(pods: Iterable[Obj]) -> list[tuple[str, str]]:
    """(pod, container) that were OOMKilled and run again now, so their cgroup is readable."""
    wanted = []
    for pod in pods:
        for status in g(pod, "status", "containerStatuses", default=[]) or []:
            oom = g(status, "lastState", "terminated", "reason") == "OOMKilled"
            if oom and g(status, "state", "running") is not None:
                wanted.append((name_of(pod), str(status.get("name"))))
    return wanted


# --- the collector: the only part that talks to the cluster ----------------------------------


def api_client(settings: Settings) -> Any:
    from kubernetes import config

    return config.new_client_from_config(context=settings.context_name or None)


def collect(settings: Settings, namespace: str, *, client_factory: Any = None) -> Snapshot:
    """Read the namespace's objects (raw JSON), the logs and peaks the rules need."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = (client_factory or api_client)(settings)
    core, batch, storage = client.CoreV1Api(api), client.BatchV1Api(api), client.StorageV1Api(api)
    timeout = 20

    def items(call: Any, *args: Any) -> list[Obj]:
        response = call(*args, _preload_content=False, _request_timeout=timeout)
        return list(json.loads(response.data).get("items") or [])

    try:
        core.read_namespace(namespace, _request_timeout=timeout)
    except ApiException as exc:
        if exc.status == 404:
            raise NamespaceMissing(namespace) from None
        raise
    snapshot = Snapshot(
        namespace=namespace,
        pods=items(core.list_namespaced_pod, namespace),
        events=items(core.list_namespaced_event, namespace),
        services=items(core.list_namespaced_service, namespace),
        endpoints=items(core.list_namespaced_endpoints, namespace),
        jobs=items(batch.list_namespaced_job, namespace),
        pvcs=items(core.list_namespaced_persistent_volume_claim, namespace),
        storage_classes=items(storage.list_storage_class),
        nodes=items(core.list_node),
    )
    for pod, container, previous in log_requests(snapshot.pods):
        try:
            text = core.read_namespaced_pod_log(
                pod, namespace, container=container, previous=previous,
                tail_lines=40, _request_timeout=timeout,
            )
        except ApiException:
            continue
        snapshot.logs[f"{pod}/{container}"] = str(text)
    for pod, container in peak_requests(snapshot.pods):
        peak = _read_peak(api, namespace, pod, container)
        if peak:
            snapshot.peaks[f"{pod}/{container}"] = peak
    return snapshot


def _read_peak(api: Any, namespace: str, pod: str, container: str) -> int | None:
    """The container's peak memory from its cgroup, via exec; None when unreadable."""
    from todo_deploy.kube import exec_in_pod

    for path in PEAK_FILES:
        try:
            code, out, _ = exec_in_pod(api, namespace, pod, container, ["cat", path], timeout=10)
        except Exception:  # noqa: BLE001 - exec refused, no `cat`, container gone: peak unknown
            return None
        if code == 0 and out.strip().isdigit():
            return int(out.strip())
    return None
