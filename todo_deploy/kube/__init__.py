"""Thin helpers over the Kubernetes API: one connection per context, server-side
apply under one field manager, label-based listing, rollout waits, quantities.
(The diagnosis of what is wrong is the package todo_deploy/doctor/, on top of this.)

Objects travel as plain dicts (the API's JSON), so the code does not depend on
the SDK's generated models and a no-change deploy costs one HTTP round-trip per
object. The connection (todo_deploy/kube/transport.py) needs the `kubernetes`
SDK only for plugin-authenticated users; exec and port-forward use it always,
imported on first use.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from todo_deploy.console import console
from todo_deploy.kube import transport as kube_transport

FIELD_MANAGER = "todo-deploy"

# kind -> (plural, namespaced) for the kinds this project creates; others are discovered.
_KNOWN: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "StorageClass": ("storageclasses", False),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "ServiceAccount": ("serviceaccounts", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "Pod": ("pods", True),
    "Endpoints": ("endpoints", True),
    "Event": ("events", True),
    "Deployment": ("deployments", True),
    "StatefulSet": ("statefulsets", True),
    "ReplicaSet": ("replicasets", True),
    "DaemonSet": ("daemonsets", True),
    "Job": ("jobs", True),
    "CronJob": ("cronjobs", True),
    "NetworkPolicy": ("networkpolicies", True),
    "Ingress": ("ingresses", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
}

# The top-level kinds an app release may own, looked up for prune and `down`.
# (api group, kind); the version is discovered per cluster (e.g. PDB policy/v1 vs v1beta1).
OWNED_KINDS: tuple[tuple[str, str], ...] = (
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Service"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "PersistentVolumeClaim"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("networking.k8s.io", "Ingress"),
    ("policy", "PodDisruptionBudget"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("", "Pod"),
)


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status}: {message}" if status else message)


NO_LOGS = "(no logs: "  # how pod_logs() answers when the API server gives none, then why


@dataclass(frozen=True)
class Capabilities:
    """A cluster's Kubernetes version and served groupVersions (Helm's --kube-version
    and --api-versions)."""

    kube_version: str
    api_versions: tuple[str, ...]


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str = ""

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace", ""))

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity that ignores the API version (PDB v1 and v1beta1 are the same object)."""
        return (self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class _Resource:
    plural: str
    namespaced: bool
    listable: bool


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class Kube:
    """A connection to one kubeconfig context ('' = the current one).

    Requests go through `todo_deploy.kube.transport`: a urllib3 pool for users with
    certificates, tokens or basic auth, the kubernetes SDK for plugin users.
    `api` is a kubernetes SDK ApiClient (for exec and port-forward websockets),
    made on first use.
    """

    def __init__(self, context: str = "", api_client: Any = None) -> None:
        self.context = context
        self._api = api_client
        self.transport: kube_transport.Transport
        if api_client is not None:
            self.transport = kube_transport.SdkTransport(api_client)
        else:
            try:
                self.transport = kube_transport.connect(context)
            except Exception as exc:  # noqa: BLE001 - KubeconfigError, bad PEM, SDK ConfigException
                where = f"context {context!r}" if context else "the current context"
                raise KubeError(0, f"cannot load kubeconfig for {where}: {exc}") from None
        self._preferred: dict[str, str] | None = None
        self._all_versions: dict[str, list[str]] | None = None
        self._discovered: dict[str, dict[str, _Resource]] = {}

    @property
    def api(self) -> Any:
        """The kubernetes SDK's ApiClient for this context (imports the SDK on first use)."""
        if self._api is None:
            try:
                self._api = kube_transport.sdk_client(self.context)
            except Exception as exc:  # noqa: BLE001 - ConfigException, missing file, bad context
                where = f"context {self.context!r}" if self.context else "the current context"
                raise KubeError(0, f"cannot load kubeconfig for {where}: {exc}") from None
        return self._api

    # ---- raw HTTP -----------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, str]] | None = None,
        content_type: str | None = None,
        timeout: float = 30,
        raw: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json" if not raw else "*/*"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        try:
            status, data = self.transport.request(
                method, path, query=query, headers=headers, body=body, timeout=timeout
            )
        except Exception as exc:  # noqa: BLE001 - urllib3/TLS/timeout errors become KubeError
            status = getattr(exc, "status", 0) or 0
            raise KubeError(status, f"{method} {path}: {exc}") from None
        text = data.decode(errors="replace")
        if not 200 <= status < 300:
            message, reason = text, ""
            try:
                status_obj = json.loads(text)
                message = status_obj.get("message", text)
                reason = status_obj.get("reason", "")
            except ValueError:
                pass
            raise KubeError(status, message, reason)
        if raw:
            return text
        return json.loads(text) if text else {}

    # ---- discovery and paths ----------------------------------------------------
    def resource_info(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind."""
        if kind in _KNOWN:
            return _KNOWN[kind]
        found = self._discover(api_version).get(kind)
        if found is None:
            raise KubeError(404, f"the cluster does not serve {kind} in {api_version}")
        return found.plural, found.namespaced

    def path(self, api_version: str, kind: str, namespace: str = "", name: str = "") -> str:
        plural, namespaced = self.resource_info(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{plural}"
        return base + (f"/{quote(name)}" if name else "")

    def _discover(self, group_version: str) -> dict[str, _Resource]:
        """kind -> resource served by one groupVersion: the one discovery cache."""
        if group_version not in self._discovered:
            base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            try:
                resources = self.request("GET", base).get("resources", [])
            except KubeError as exc:
                if exc.status != 404:
                    raise
                resources = []  # not served: remembered as empty
            self._discovered[group_version] = {
                r["kind"]: _Resource(r["name"], bool(r.get("namespaced")), "list" in r.get("verbs", []))
                for r in resources
                if "/" not in r["name"]  # subresources (pods/log, deployments/scale)
            }
        return self._discovered[group_version]

    def preferred_versions(self) -> dict[str, str]:
        """API group -> its preferred groupVersion ("" -> "v1")."""
        self._group_versions()
        assert self._preferred is not None
        return self._preferred

    def capabilities(self) -> Capabilities:
        """What this cluster is, as Helm's `.Capabilities` sees it on a real install:
        its version and every groupVersion it serves (the raw path renders with them)."""
        version = str(self.server_version().get("gitVersion") or "")
        served = sorted(v for versions in self._group_versions().values() for v in versions)
        return Capabilities(version, tuple(served))

    def _group_versions(self) -> dict[str, list[str]]:
        if self._all_versions is None:
            groups = self.request("GET", "/apis").get("groups", [])
            self._preferred = {"": "v1"}
            self._all_versions = {"": ["v1"]}
            for group in groups:
                preferred = group["preferredVersion"]["groupVersion"]
                self._preferred[group["name"]] = preferred
                others = [v["groupVersion"] for v in group.get("versions", [])]
                self._all_versions[group["name"]] = [preferred] + [v for v in others if v != preferred]
        return self._all_versions

    def served(self, group: str, kind: str) -> str | None:
        """The groupVersion serving `kind` in `group` on this cluster (preferred first), or None."""
        for version in self._group_versions().get(group, []):
            try:
                if kind in self._discover(version):
                    return version
            except KubeError:
                continue  # an aggregated API that does not answer serves nothing now
        return None

    # ---- objects ------------------------------------------------------------------
    def server_version(self) -> dict[str, Any]:
        return self.request("GET", "/version", timeout=10)

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict | None:
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str = "",
        selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        query = []
        if selector:
            query.append(("labelSelector", selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        data = self.request("GET", self.path(api_version, kind, namespace), query=query)
        items = data.get("items", [])
        for item in items:  # list items omit these
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply `obj` under the `todo-deploy` field manager."""
        ref = ObjectRef.of(obj)
        query = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        return self.request(
            "PATCH",
            self.path(ref.api_version, ref.kind, ref.namespace, ref.name),
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
        )

    def patch(
        self, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch of one object (e.g. a pod's annotation: live update's mark)."""
        return self.request("PATCH", self.path(api_version, kind, namespace, name), body=body,
                            content_type="application/merge-patch+json")

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str = "",
        propagation: str = "Background",
    ) -> bool:
        """Delete one object; False when it was already gone."""
        try:
            self.request(
                "DELETE",
                self.path(api_version, kind, namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
            )
            return True
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise

    # builtins.list: in this class, a bare `list` in a signature names the method Kube.list.
    def wait_deleted(
        self, refs: Iterable[ObjectRef], timeout: float = 120
    ) -> builtins.list[ObjectRef]:
        """Wait until every object is gone; returns those still present at the deadline."""
        pending = list(refs)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if self.get(r.api_version, r.kind, r.name, r.namespace)]
            if pending:
                time.sleep(0.5)
        return pending

    def list_owned(
        self,
        namespace: str,
        selector: str,
        kinds: Sequence[tuple[str, str]] = OWNED_KINDS,
    ) -> builtins.list[dict[str, Any]]:
        """Every object of `kinds` in `namespace` matching `selector`."""
        found: list[dict[str, Any]] = []
        for group, kind in kinds:
            version = self.served(group, kind)
            if version is None:
                continue
            found.extend(self.list(version, kind, namespace, selector))
        return found

    def list_everything(self, namespace: str, selector: str) -> builtins.list[dict[str, Any]]:
        """Objects of EVERY listable namespaced kind the cluster serves that match `selector`."""
        found: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        for group, version in sorted(self.preferred_versions().items()):
            try:
                resources = self._discover(version)
            except KubeError:
                continue
            for kind, res in resources.items():
                if not (res.namespaced and res.listable):
                    continue
                try:
                    items = self.list(version, kind, namespace, selector)
                except KubeError:
                    continue
                for item in items:
                    key = (kind, item["metadata"]["name"], group)
                    if key not in seen:
                        seen.add(key)
                        found.append(item)
        return found

    def ensure_namespace(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return self.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
        )

    def pod_logs(
        self, namespace: str, pod: str, container: str, tail: int = 20, previous: bool = False
    ) -> str:
        query = [("container", container), ("tailLines", str(tail))]
        if previous:
            query.append(("previous", "true"))
        try:
            return self.request(
                "GET",
                f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log",
                query=query,
                raw=True,
            )
        except KubeError as exc:
            return f"{NO_LOGS}{exc})"


# ---- rollout state --------------------------------------------------------------


@dataclass
class Progress:
    """What one workload is doing, for the progress display."""

    ref: ObjectRef
    done: bool = False
    failed: str = ""  # non-empty: it cannot succeed (e.g. Job failed, image never pulls)
    summary: str = ""


def exec_in_pod(
    api_client: Any,
    namespace: str,
    pod: str,
    container: str,
    command: list[str],
    timeout: float = 60,
) -> tuple[int | None, str, str]:
    """Run a command in a container through the API server: (exit code, stdout, stderr).

    `stream()` swaps the client's request method while it runs, so pass a client
    no other thread is using at the same time.
    """
    from kubernetes import client
    from kubernetes.stream import stream

    resp = stream(
        client.CoreV1Api(api_client).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container=container,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    try:
        resp.run_forever(timeout=timeout)
        out, err = resp.read_channel(1), resp.read_channel(2)
        code = resp.returncode
    finally:
        resp.close()
    return code, out, err


def deployment_state(kube: Kube, dep: dict[str, Any]) -> Progress:
    """Rolled out exactly when `kubectl rollout status` says so: the new ReplicaSet has
    every replica updated and available and no old replica is active. Old pods that are
    already terminating do not count (they are out of the Service's endpoints), so this
    does not wait for their drain."""
    meta, spec, status = dep["metadata"], dep.get("spec", {}), dep.get("status", {})
    ref = ObjectRef("apps/v1", "Deployment", meta["name"], meta.get("namespace", ""))
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    ready = status.get("readyReplicas", 0)
    total = status.get("replicas", 0)
    summary = f"{updated}/{want} updated, {ready}/{want} ready, {available}/{want} available"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return Progress(ref, summary="waiting for the controller to see the new spec")
    for cond in status.get("conditions", []):
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Progress(ref, failed=f"progress deadline exceeded: {cond.get('message', '')}")
    if updated < want:
        return Progress(ref, summary=summary)
    if total > updated:
        return Progress(ref, summary=f"{summary}; {total - updated} old replica(s) pending termination")
    if available < updated:
        return Progress(ref, summary=summary)
    return Progress(ref, done=True, summary=summary)


def statefulset_state(sts: dict[str, Any]) -> Progress:
    meta, spec, status = sts["metadata"], sts.get("spec", {}), sts.get("status", {})
    ref = ObjectRef("apps/v1", "StatefulSet", meta["name"], meta.get("namespace", ""))
    want = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    summary = f"{ready}/{want} ready, {updated}/{want} updated"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return Progress(ref, summary="waiting for the controller to see the new spec")
    revision_ok = status.get("currentRevision") == status.get("updateRevision")
    done = ready == want and updated == want and revision_ok
    return Progress(ref, done=done, summary=summary)


def job_state(job: dict[str, Any]) -> Progress:
    meta, status = job["metadata"], job.get("status", {})
    ref = ObjectRef("batch/v1", "Job", meta["name"], meta.get("namespace", ""))
    for cond in status.get("conditions", []):
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return Progress(ref, done=True, summary="complete")
        if cond.get("type") == "Failed":
            return Progress(ref, failed=f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}")
    summary = (
        f"{status.get('active', 0)} active, {status.get('succeeded', 0)} succeeded, "
        f"{status.get('failed', 0)} failed"
    )
    return Progress(ref, summary=summary)


# Waiting reasons that will not fix themselves while we wait.
FATAL_WAITING = frozenset(
    {"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "ImageInspectError"}
)
CRASHES = 2  # restarts after which a crash-looping container fails the wait


def attempts_used_up(pods: Sequence[dict[str, Any]], backoff_limit: int) -> str:
    """A Job's every attempt failed: more Failed pods than its backoffLimit allows. Said
    here because the Job controller (v1.20 and others) writes its Failed condition only
    after its own back-off delay, which can be longer than our deadline."""
    failed = sorted((p for p in pods if p.get("status", {}).get("phase") == "Failed"),
                    key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    if len(failed) <= backoff_limit:
        return ""
    last = failed[-1]
    exits = [f"container {cs.get('name')} exited with code {terminated.get('exitCode', '?')}"
             for cs in last.get("status", {}).get("containerStatuses", []) or []
             if (terminated := (cs.get("state") or {}).get("terminated"))]
    return (f"all {len(failed)} attempts failed (backoffLimit {backoff_limit}); last "
            f"{last['metadata']['name']}: {', '.join(exits) or 'no exit code recorded'}")


_PULL_REFUSED = ("unauthorized", "no basic auth credentials", "authentication required")


def pull_refused(message: str) -> bool:
    """Does a failed pull's message say the registry refused the credentials (or wanted
    some)? Not transient: the kubelet retries with the same pull Secret."""
    lowered = message.lower()
    return any(word in lowered for word in _PULL_REFUSED)


def stuck_reason(kube: Kube, namespace: str, selector: str, backoff_limit: int | None = None) -> str:
    """A reason the pods under `selector` cannot become ready (or, with a Job's
    `backoff_limit`, cannot succeed), or ''."""
    pods = kube.list("v1", "Pod", namespace, selector)
    if backoff_limit is not None:
        used_up = attempts_used_up(pods, backoff_limit)
        if used_up:
            return used_up
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING or (
                    waiting.get("reason") == "ErrImagePull" and pull_refused(waiting.get("message", ""))):
                return f"{pod['metadata']['name']}: {waiting['reason']}: {waiting.get('message', '')}"
            # Crashed, restarted, crashed again: the kubelet now backs off for longer and
            # longer; waiting out the deadline would only delay the diagnosis.
            if waiting.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= CRASHES:
                last = (cs.get("lastState") or {}).get("terminated") or {}
                return (f"{pod['metadata']['name']}: container {cs.get('name')} keeps crashing "
                        f"({cs.get('restartCount')} restarts; last exit code "
                        f"{last.get('exitCode', '?')} {last.get('reason', '')})".rstrip())
    return ""


# A restart whose last run ended this long before `since` still counts (clock skew
# between this machine and the node).
RESTART_CLOCK_SKEW_S = 5.0


def restarted_containers(pods: Iterable[dict[str, Any]], since: datetime | None) -> tuple[list[str], list[str]]:
    """Restarted containers as 'pod/container xN (why)': those that count (crash-looping now,
    or their last run ended at or after `since`; every one when `since` is None) and those
    that do not (an earlier restart: a node or laptop reboot, a crash before this deploy)."""
    counted: list[str] = []
    earlier: list[str] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            restarts = int(cs.get("restartCount") or 0)
            if not restarts:
                continue
            last = (cs.get("lastState") or {}).get("terminated") or {}
            ended = _timestamp(last.get("finishedAt"))
            waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
            why = " ".join(str(x) for x in (last.get("reason"), f"exit {last['exitCode']}" if "exitCode" in last else "",
                                            f"at {last['finishedAt']}" if ended else "") if x)
            line = f"{pod['metadata']['name']}/{cs.get('name')} x{restarts}" + (f" ({why})" if why else "")
            recent = ended is None or since is None or ended.timestamp() >= since.timestamp() - RESTART_CLOCK_SKEW_S
            (counted if waiting == "CrashLoopBackOff" or recent else earlier).append(line)
    return counted, earlier


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _workload_selector(obj: dict[str, Any]) -> str:
    if obj["kind"] == "Job":
        uid = obj["metadata"].get("uid", "")
        return f"controller-uid={uid}" if uid else f"job-name={obj['metadata']['name']}"
    return label_selector(obj["spec"]["selector"].get("matchLabels", {}))


def state_of(kube: Kube, ref: ObjectRef) -> tuple[Progress, dict[str, Any] | None]:
    obj = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    if obj is None:
        return Progress(ref, failed="object does not exist"), None
    obj.setdefault("kind", ref.kind)
    if ref.kind == "Deployment":
        return deployment_state(kube, obj), obj
    if ref.kind == "StatefulSet":
        return statefulset_state(obj), obj
    if ref.kind == "Job":
        return job_state(obj), obj
    return Progress(ref, done=True, summary="no rollout"), obj


@dataclass
class WaitOutcome:
    ok: bool
    seconds: float
    states: list[Progress] = field(default_factory=list)
    message: str = ""
    failed_selectors: list[tuple[str, str]] = field(default_factory=list)  # (namespace, selector)


def wait_for(
    kube: Kube,
    refs: Sequence[ObjectRef],
    timeout_s: float,
    *,
    log: Callable[[str], None] = print,
    poll_s: float = 0.25,
    what: str = "rollout",
    stuck_every_s: float = 1.0,
) -> WaitOutcome:
    """Wait until every workload in `refs` is rolled out/ready/complete, or fail.

    Returns at once when everything is already done (no-change deploys). Polls the
    workloads every `poll_s` (one GET each: a rollout is seen done within that long)
    and their pods for a reason they can never start every `stuck_every_s`.
    A rich live table on a terminal; one plain line per state change otherwise.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    last: dict[ObjectRef, str] = {}
    live = None
    if sys.stdout.isatty():
        from rich.live import Live

        live = Live(console=console(), refresh_per_second=4, transient=True)
    states: list[Progress] = []
    last_stuck_check = started - stuck_every_s
    try:
        while True:
            check_stuck = time.monotonic() - last_stuck_check >= stuck_every_s
            if check_stuck:
                last_stuck_check = time.monotonic()
            states, objs = _poll_states(kube, refs, check_stuck)
            elapsed = time.monotonic() - started
            if all(s.done for s in states) or any(s.failed for s in states):
                break
            if time.monotonic() >= deadline:
                break
            if live is not None:
                if not live.is_started:
                    live.start()
                live.update(_progress_table(states, elapsed, what))
            else:
                _log_changes(states, elapsed, last, log)
            time.sleep(poll_s)
    finally:
        if live is not None and live.is_started:
            live.stop()
    return _wait_outcome(states, objs, time.monotonic() - started, timeout_s, what)


def _poll_states(kube: Kube, refs: Sequence[ObjectRef],
                 check_stuck: bool) -> tuple[list[Progress], list[dict[str, Any] | None]]:
    """Each workload's progress and object; with `check_stuck`, a workload not done is marked
    failed when its pods show a reason they can never start."""
    states: list[Progress] = []
    objs: list[dict[str, Any] | None] = []
    for ref in refs:
        state, obj = state_of(kube, ref)
        if check_stuck and not state.done and not state.failed and obj is not None:
            backoff = obj["spec"].get("backoffLimit", 6) if ref.kind == "Job" else None
            reason = stuck_reason(kube, ref.namespace, _workload_selector(obj), backoff)
            if reason:
                state.failed = reason
        states.append(state)
        objs.append(obj)
    return states, objs


def _log_changes(states: Sequence[Progress], elapsed: float, last: dict[ObjectRef, str],
                 log: Callable[[str], None]) -> None:
    """One plain line per workload whose state changed since the last poll (`last` updated)."""
    for s in states:
        line = s.summary or ("done" if s.done else "")
        if last.get(s.ref) != line:
            last[s.ref] = line
            log(f"  [{elapsed:5.1f}s] {s.ref}: {line}")


def _wait_outcome(states: list[Progress], objs: list[dict[str, Any] | None], elapsed: float,
                  timeout_s: float, what: str) -> WaitOutcome:
    """The wait's outcome from the last poll: done, the failures, or what the deadline left."""
    selectors = []
    for s, obj in zip(states, objs, strict=True):
        if not s.done and obj is not None:
            selectors.append((s.ref.namespace, _workload_selector(obj)))
    if all(s.done for s in states):
        return WaitOutcome(True, elapsed, states, f"{what} complete in {elapsed:.1f}s")
    failed = [s for s in states if s.failed]
    if failed:
        msg = "; ".join(f"{s.ref}: {s.failed}" for s in failed)
    else:
        pending = ", ".join(f"{s.ref} ({s.summary})" for s in states if not s.done)
        msg = f"deadline of {timeout_s:g}s passed; not done: {pending}"
    return WaitOutcome(False, elapsed, states, msg, selectors)


def _progress_table(states: Sequence[Progress], elapsed: float, what: str) -> Any:
    from rich.table import Table

    table = Table(title=f"{what} ({elapsed:.0f}s)", title_justify="left")
    table.add_column("object")
    table.add_column("state")
    for s in states:
        mark = "[green]done[/]" if s.done else "[yellow]…[/]"
        table.add_row(str(s.ref), f"{mark} {s.summary}")
    return table


# ---- quantities and image identity ----------------------------------------------


def quantity(value: str | float | None) -> Decimal:
    """A Kubernetes quantity ("500m", "32Mi", "1e3") as a number; 0 when absent.

    The one quantity parser (the SDK's); ValueError for text the API server would refuse.
    """
    if value is None or value == "":
        return Decimal(0)
    return Decimal(_sdk_parse_quantity()(value))


@cache
def _sdk_parse_quantity() -> Callable[[Any], Decimal]:
    """The SDK's own quantity parser (kubernetes/utils/quantity.py needs only `decimal`).

    Imported as `kubernetes.utils.quantity` it would first run kubernetes/__init__.py,
    which imports the whole generated client (0.3-0.6 s); so its file is loaded on its
    own unless the SDK is imported already.
    """
    if "kubernetes" in sys.modules:
        from kubernetes.utils import parse_quantity

        return parse_quantity
    package = importlib.util.find_spec("kubernetes")
    if package is None or not package.submodule_search_locations:
        raise ImportError("the kubernetes package is not installed")
    path = Path(package.submodule_search_locations[0]) / "utils" / "quantity.py"
    spec = importlib.util.spec_from_file_location("todo_deploy._sdk_quantity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_quantity


def image_id_matches(status_image_id: str, recorded_id: str) -> bool:
    """Does a container status imageID name the recorded image ID ("sha256:<hex>")?

    Docker (dockershim, minikube's docker runtime) reports `docker://sha256:<id>`
    for local images; containerd/CRI-O report `sha256:<id>` or `repo@sha256:<id>`.
    A `docker-pullable://repo@sha256:<digest>` is a registry digest, not the image ID,
    and only matches when the recorded value is that digest.
    """
    if not status_image_id or not recorded_id:
        return False
    want = recorded_id.split(":", 1)[-1].lower()
    got = status_image_id.rsplit("sha256:", 1)[-1].lower()
    return bool(want) and got == want


def runs_image(status: dict[str, Any], recorded_id: str) -> bool | None:
    """Does this container status run the recorded image ID? None when the container has
    not started (no imageID yet: a pod being created, or a surplus pod of a scale-down that
    its ReplicaSet has not deleted yet): it runs nothing, so it proves nothing either way."""
    running = status.get("imageID", "")
    if not running:
        return None
    return image_id_matches(running, recorded_id)
