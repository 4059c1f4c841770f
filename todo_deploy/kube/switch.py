"""Raw <-> Helm without taking the app down: the live objects change hands, none is
deleted and made again.

raw -> Helm: each live raw object the chart also renders gets the ownership marks Helm
3.2+ and 4 check before they adopt an existing object (label managed-by=Helm, the
release-name and release-namespace annotations); the install then updates them in
place. Helm -> raw: the raw deploy applies over the live objects (server-side apply,
forced: it takes the fields over), then the Helm marks are removed and the release
record (its storage Secrets) is deleted; nothing of the app is uninstalled.

Only the managed-by label differs between the two renders of a pod template, and a
changed pod template rolls the workload: the Deployments roll (maxUnavailable 0, so
they keep serving) but a one-replica StatefulSet (the bundled database) would stop its
only pod. Its new template is applied with updateStrategy OnDelete, its pod relabelled
to the new revision, and RollingUpdate put back: the controller then finds the pod
current and leaves it running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from todo_deploy.kube import Kube, KubeError, ObjectRef, deployment_state, label_selector

if TYPE_CHECKING:
    from todo_deploy.config import Settings

HELM_MANAGED_BY = "Helm"
MANAGED_BY = "app.kubernetes.io/managed-by"
RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
REVISION_LABEL = "controller-revision-hash"
MERGE = "application/merge-patch+json"
# Never handed over: the pods follow their controllers, the claims and Secrets stay
# outside the chart (existingSecret) whichever path deploys.
NOT_HANDED_OVER = frozenset({"Pod", "PersistentVolumeClaim", "Secret", "Namespace", "Job"})
# Finished work, deleted rather than handed over: the migration Job (its pod template is
# immutable, and its name differs between the paths: a migration key on the raw path, the
# image tag under Helm; the other path runs its own, a no-op at head) and Helm's test pods.
LEFTOVER_KINDS = frozenset({"Job", "Pod"})


def helm_marks(release: str, namespace: str) -> dict[str, Any]:
    """The metadata that lets `helm install` adopt an existing object."""
    return {"labels": {MANAGED_BY: HELM_MANAGED_BY},
            "annotations": {RELEASE_NAME: release, RELEASE_NAMESPACE: namespace}}


def raw_marks(managed_by: str) -> dict[str, Any]:
    """The metadata that hands an object back to the raw path (Helm's annotations go)."""
    return {"labels": {MANAGED_BY: managed_by},
            "annotations": {RELEASE_NAME: None, RELEASE_NAMESPACE: None}}


def is_release_record(secret: dict[str, Any], release: str) -> bool:
    """Helm 3/4 keep each revision of a release as a Secret of type helm.sh/release.v1
    labelled owner=helm, name=<release>: those, and only those, are the release record."""
    labels = secret.get("metadata", {}).get("labels") or {}
    return (secret.get("type") == "helm.sh/release.v1" and labels.get("owner") == "helm"
            and labels.get("name") == release)


def ident(obj: dict[str, Any]) -> tuple[str, str]:
    """Kind and name: one object of the namespace whatever its API version (a render
    may leave the namespace out)."""
    return obj["kind"], obj["metadata"]["name"]


def to_adopt(live: Iterable[dict[str, Any]], rendered: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live objects Helm will find in its render (so must be able to adopt)."""
    wanted = {ident(o) for o in rendered}
    return [o for o in live if o["kind"] not in NOT_HANDED_OVER
            and ident(o) in wanted]


def leftovers(live: Iterable[dict[str, Any]], rendered: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the path being left made and the other does not take over: its Jobs, and
    pods of no controller (Helm's test pods)."""
    wanted = {ident(o) for o in rendered}
    return [o for o in live if o["kind"] == "Job" or (
        o["kind"] == "Pod" and ident(o) not in wanted and not o["metadata"].get("ownerReferences"))]


def _patch(kube: Kube, obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    ref = ObjectRef.of(obj)
    return kube.request("PATCH", kube.path(ref.api_version, ref.kind, ref.namespace, ref.name),
                        body=body, content_type=MERGE)


def mark(kube: Kube, objects: list[dict[str, Any]], metadata: dict[str, Any]) -> None:
    for obj in objects:
        _patch(kube, obj, {"metadata": metadata})


def delete_leftovers(kube: Kube, objects: list[dict[str, Any]], log: Callable[[str], None]) -> list[str]:
    gone = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        if kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace, "Background"):
            gone.append(str(ref))
    if gone:
        log(f"switch: removed {len(gone)} finished objects the other path does not render: "
            f"{', '.join(gone)}")
    return gone


def apply_keeping_pods(kube: Kube, sts: dict[str, Any], labels: dict[str, str],
                       apply: Callable[[dict[str, Any]], dict[str, Any]],
                       log: Callable[[str], None]) -> None:
    """Apply a StatefulSet whose pod template changed only in `labels`, without
    restarting its pods: applied with updateStrategy OnDelete, its pods relabelled to
    the new revision, then applied as rendered (RollingUpdate: nothing left to roll)."""
    ref = ObjectRef.of(sts)
    live = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    if live is None:
        apply(sts)
        return
    spec = sts["spec"]
    kept: list[str] = []
    revision = ""
    after = apply({**sts, "spec": {**spec, "updateStrategy": {"type": "OnDelete"}}})
    try:
        current = _observed(kube, ref, after["metadata"].get("generation", 0))
        revision = (current.get("status") or {}).get("updateRevision", "")
        selector = label_selector(spec["selector"]["matchLabels"])
        for pod in kube.list("v1", "Pod", ref.namespace, selector):
            if revision and not pod["metadata"].get("deletionTimestamp"):
                path = f"/api/v1/namespaces/{quote(ref.namespace)}/pods/{quote(pod['metadata']['name'])}"
                kube.request("PATCH", path, content_type=MERGE,
                             body={"metadata": {"labels": {**labels, REVISION_LABEL: revision}}})
                kept.append(pod["metadata"]["name"])
    finally:
        apply(sts)  # its own strategy back; the template (the revision) is the same
    log(f"switch: {ref} takes the new pod template without a restart: "
        f"{', '.join(kept) or 'no pod'} relabelled to revision {revision or '?'}")


def _observed(kube: Kube, ref: ObjectRef, generation: int, timeout: float = 20) -> dict[str, Any]:
    """The StatefulSet once its controller has seen `generation` (updateRevision is new)."""
    deadline = time.monotonic() + timeout
    while True:
        found = kube.get(ref.api_version, ref.kind, ref.name, ref.namespace) or {}
        if (found.get("status") or {}).get("observedGeneration", 0) >= generation \
                or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def release_record(kube: Kube, settings: Settings) -> list[dict[str, Any]]:
    secrets = kube.list("v1", "Secret", settings.namespace,
                        f"owner=helm,name={settings.release_name}")
    return [s for s in secrets if is_release_record(s, settings.release_name)]


def forget_release(kube: Kube, settings: Settings, log: Callable[[str], None]) -> int:
    """Delete the release record only (the objects stay, now the raw path's)."""
    record = release_record(kube, settings)
    for secret in record:
        kube.delete("v1", "Secret", secret["metadata"]["name"], settings.namespace)
    if record:
        log(f"switch: Helm release {settings.release_name} forgotten ({len(record)} revision "
            "Secrets deleted); its objects were taken over, none deleted")
    return len(record)


class RolloutProgress:
    """Prints each Deployment's rollout state when it changes, every `interval` seconds,
    while something else (the Helm install) waits silently."""

    def __init__(self, kube: Kube, namespace: str, selector: str,
                 log: Callable[[str], None], interval: float = 3.0) -> None:
        self.kube, self.namespace, self.selector = kube, namespace, selector
        self.log, self.interval = log, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last: dict[str, str] = {}

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                deployments = self.kube.list("apps/v1", "Deployment", self.namespace, self.selector)
            except KubeError:
                continue
            for dep in deployments:
                state = deployment_state(self.kube, dep)
                line = f"{state.ref.name}: {'rolled out' if state.done else state.summary}"
                if self._last.get(state.ref.name) != line:
                    self._last[state.ref.name] = line
                    self.log(f"helm: {time.monotonic() - started:.0f}s {line}")
