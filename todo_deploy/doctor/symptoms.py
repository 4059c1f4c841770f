"""What is wrong with one pod: a container that cannot start, crashes or is OOMKilled,
a pod the scheduler cannot place, a failing probe. Pods of one workload that share a
symptom's kind and key become one finding (engine.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from todo_deploy.doctor.hints import capacity_fix, delivery_fix
from todo_deploy.doctor.model import (
    Obj,
    Target,
    Workload,
    containers_of,
    dig,
    events_for,
    fmt_amount,
    fmt_bytes,
    name_of,
    requests_of,
    statuses_of,
)
from todo_deploy.kube import NO_LOGS, pull_refused, quantity

LOG_LINES = 8
PULL_REASONS = ("ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName")
CONFIG_REASONS = ("CreateContainerConfigError",)


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


def log_excerpt(logs: Mapping[str, str], pod: str, container: str) -> str:
    text = logs.get(f"{pod}/{container}", "").strip()
    if not text:
        return "no log output"
    if text.startswith(NO_LOGS):
        return f"its log could not be read {text}"
    lines = text.splitlines()[-LOG_LINES:]
    return "last log lines: " + " | ".join(line.strip() for line in lines)


def container_state(status: Obj) -> tuple[str, str, Obj | None]:
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


def pull_refusal(pod: Obj, reason: str, message: str, image: str,
                 events: list[Obj]) -> str:
    """The registry's refusal of this pod's pull of `image` (its waiting message, else
    the kubelet's latest Failed event for it: ImagePullBackOff's message only says
    "Back-off"), or ''."""
    if reason not in ("ErrImagePull", "ImagePullBackOff"):
        return ""
    if pull_refused(message):
        return message
    for e in reversed(events_for(events, "Pod", name_of(pod))):
        text = str(e.get("message") or "")
        if e.get("reason") == "Failed" and image in text and pull_refused(text):
            return text
    return ""


def registry_auth_fix(pod: Obj, image: str, deploy: str) -> str:
    """Which setting to fix: the pod sent the pull Secret (REGISTRY_PASSWORD is wrong) or
    sent none (REGISTRY_USERNAME/REGISTRY_PASSWORD are not set)."""
    first = image.split("/", 1)[0] if "/" in image else ""
    host = first if any(c in first for c in ".:") or first == "localhost" else "the registry"
    secrets = [str(s.get("name")) for s in dig(pod, "spec", "imagePullSecrets", default=[]) or []]
    if secrets:
        return (f"the pull Secret {', '.join(secrets)} holds credentials {host} refuses: fix "
                f"REGISTRY_PASSWORD (and REGISTRY_USERNAME) in .env or the environment, or the "
                f"entry for {host} in REGISTRY_AUTH_FILE (check them with `docker login "
                f"{host}`), then {deploy}: it makes the pull Secret again from them")
    return (f"{host} wants credentials and the pod sends none: set REGISTRY_USERNAME and "
            f"REGISTRY_PASSWORD, or REGISTRY_AUTH_FILE (with IMAGE_REGISTRY={host}), then "
            f"{deploy}: it makes the pull Secret from them and every pod names it in "
            "imagePullSecrets")


def container_symptoms(
    pod: Obj,
    target: Target | None = None,
    *,
    logs: Mapping[str, str] | None = None,
    peaks: Mapping[str, int] | None = None,
    deploy: str = "`inv deploy`",
    events: list[Obj] | None = None,
) -> list[Symptom]:
    """Per container, the first of: config error, registry refusal, image not found,
    OOMKilled, crash loop."""
    target, logs, peaks = target or Target(), logs or {}, peaks or {}
    found: list[Symptom] = []
    specs = containers_of(pod)
    for status in statuses_of(pod):
        cname = str(status.get("name"))
        reason, message, terminated = container_state(status)
        image = str(specs.get(cname, {}).get("image") or status.get("image", ""))
        restarts = int(status.get("restartCount") or 0)
        if reason in CONFIG_REASONS:
            found.append(Symptom(
                "missing config", f"{cname}|{message}",
                f"container {cname}: CreateContainerConfigError: {message}",
                _config_fix(cname, message, deploy),
            ))
        elif refusal := pull_refusal(pod, reason, message, image, events or []):
            found.append(Symptom(
                "registry refused the pull", f"{cname}|refused|{image}",
                f"container {cname}: {reason} for image {image}: the registry refused the "
                f"credentials (unauthorized): {refusal.strip()}",
                registry_auth_fix(pod, image, deploy), subject=image,
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
        elif reason == "CrashLoopBackOff" or _restarts_after_failing(pod, status, terminated):
            found.append(_crash_loop(pod, cname, terminated, restarts, logs, deploy))
    return found


def _restarts_after_failing(pod: Obj, status: Obj, terminated: Obj | None) -> bool:
    """A container restarted after a non-zero exit and not ready since: a crash loop between
    its back-offs."""
    return bool(
        terminated
        and dig(pod, "spec", "restartPolicy", default="Always") == "Always"
        and int(status.get("restartCount") or 0) > 0
        and int(terminated.get("exitCode") or 0) != 0
        and not status.get("ready")
    )


def _crash_loop(pod: Obj, cname: str, terminated: Obj | None, restarts: int,
                logs: Mapping[str, str], deploy: str) -> Symptom:
    """The crash loop of container `cname`: its exit code, restarts and log excerpt (a
    container with a log ranks above one without)."""
    pod_name = name_of(pod)
    namespace = dig(pod, "metadata", "namespace")
    in_ns = f" -n {namespace}" if namespace else ""
    text = logs.get(f"{pod_name}/{cname}", "")
    has_log = int(bool(text.strip()) and not text.startswith(NO_LOGS))
    raw = (terminated or {}).get("exitCode")
    code = int(raw) if raw is not None else None
    return Symptom(
        "CrashLoopBackOff", f"{cname}|{code}",
        f"CrashLoopBackOff: container {cname} exits with code {code} "
        f"({_exit_meaning(code)}), restarted {restarts} times; "
        f"{log_excerpt(logs, pod_name, cname)}",
        f"fix what the log of container {cname} shows (`kubectl logs{in_ns} {pod_name} "
        f"-c {cname} --previous`), e.g. a missing setting or an unreachable dependency, "
        f"then {deploy}",
        weight=has_log * 1000 + restarts,
    )


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
    message = _unschedulable_message(pod, events)
    if message is None:
        return None
    unbound = _unbound_claims(pod, pvcs)
    short = list(dict.fromkeys(_INSUFFICIENT.findall(message)))
    if short:
        owner = workload or Workload("Pod", name_of(pod))
        return _insufficient(pod, short, message, nodes, requested, owner, scheduled,
                             target or Target())
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


def _unschedulable_message(pod: Obj, events: list[Obj]) -> str | None:
    """What the scheduler said of a Pending pod it could not place (its last FailedScheduling
    event, else its PodScheduled condition), None for any other pod."""
    if dig(pod, "status", "phase") != "Pending":
        return None
    conditions = dig(pod, "status", "conditions", default=[])
    scheduled_condition: Obj = next(
        (c for c in conditions if c.get("type") == "PodScheduled"), {}
    )
    if scheduled_condition.get("status") != "False":
        return None
    failed = [e for e in events_for(events, "Pod", name_of(pod))
              if e.get("reason") == "FailedScheduling"]
    source = failed[-1] if failed else scheduled_condition
    return str(source.get("message") or "").strip()


def _unbound_claims(pod: Obj, pvcs: list[Obj]) -> list[str]:
    """The names of the pod's claims that are still Pending."""
    pending_claims = {name_of(p) for p in pvcs if dig(p, "status", "phase") == "Pending"}
    claims = [
        str(dig(v, "persistentVolumeClaim", "claimName"))
        for v in dig(pod, "spec", "volumes", default=[])
        if dig(v, "persistentVolumeClaim", "claimName")
    ]
    return [c for c in claims if c in pending_claims]


def _insufficient(
    pod: Obj,
    short: list[str],
    message: str,
    nodes: list[Obj],
    requested: Mapping[str, Mapping[str, Decimal]] | None,
    owner: Workload,
    scheduled: int,
    target: Target,
) -> Symptom:
    """A pod no node has room for: per short resource, its request vs the largest node."""
    shortages: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    parts = []
    for resource in short:
        per_pod = requests_of(pod, resource)
        allocatable, free = _largest_node(nodes, requested or {}, resource)
        shortages[resource] = (per_pod, allocatable, free)
        parts.append(
            f"each pod requests {fmt_amount(resource, per_pod)} {resource}, the largest "
            f"node allocates {fmt_amount(resource, allocatable)}"
            + (f" of which {fmt_amount(resource, free)} is free" if requested else "")
        )
    return Symptom(
        f"Pending: insufficient {', '.join(short)}", ",".join(short),
        f"Pending, Insufficient {', '.join(short)}: " + "; ".join(parts)
        + f" (scheduler: {message})",
        capacity_fix(shortages, owner, scheduled, target),
    )


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
    specs = containers_of(pod)
    statuses = {str(s.get("name")): s for s in statuses_of(pod)}
    seen: set[tuple[str, str]] = set()
    for event in reversed(events_for(events, "Pod", pod_name)):
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
