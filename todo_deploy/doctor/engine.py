"""From a snapshot to findings, causes first: symptoms grouped per workload, object
causes added, consequences folded under the cause that explains them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from todo_deploy.components import BACKEND, DATABASE
from todo_deploy.doctor.autoscaling import hpa_findings
from todo_deploy.doctor.ingress import ingress_findings, observed_time
from todo_deploy.doctor.model import (
    CAUSES,
    Finding,
    Index,
    Obj,
    Snapshot,
    Target,
    Workload,
    dig,
    fresh_events,
    is_live,
    is_ready,
    labels_of,
    matches,
    name_of,
)
from todo_deploy.doctor.objects import (
    failed_create_findings,
    image_findings,
    job_findings,
    pvc_findings,
    service_findings,
)
from todo_deploy.doctor.symptoms import (
    Symptom,
    container_symptoms,
    pending_symptom,
    probe_symptoms,
)

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef

# What each of the app's parts (by pod label) needs before it can be ready: the
# backend's /ready queries the database, the migration Job ("migration") waits for it.
# (The frontend's /readyz does not ask the backend.)
NEEDS: dict[str, tuple[str, ...]] = {
    BACKEND.label: (DATABASE.label,),
    "migration": (DATABASE.label,),
}
# Causes before what they cause; a kind is ranked by the first prefix it starts with.
ORDER = (
    "scaled to 0", "cannot create pods", "image differs from the build", "missing config",
    "image not found", "unbound PVC", "Pending", "OOMKilled", "CrashLoopBackOff", "failed Job",
    "Startup probe failing", "Liveness probe failing", "Readiness probe failing",
    "Service without endpoints",
)
CONSEQUENCE_KINDS = ("Readiness probe failing", "Startup probe failing", "Service without endpoints")


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
    """Fold each consequence into its cause, then the findings left, causes first."""
    items.sort(key=lambda i: i.rank)
    by_ref: dict[str, list[_Item]] = {}
    for item in items:
        by_ref.setdefault(item.finding.object, []).append(item)
    _fold_into_scale_down(by_ref)
    _fold_into_unbound_claims(items, by_ref)
    _fold_probe_failures(items, by_ref, _down_components(by_ref, index))
    _fold_services_without_endpoints(items, by_ref, index, snapshot)
    return [_finding_of(item) for item in items if item.into is None]


def _fold_into_scale_down(by_ref: dict[str, list[_Item]]) -> None:
    """A workload scaled to 0: whatever its pods still show (one not yet marked for deletion,
    its past restarts and failed probes) is the scale-down's consequence."""
    for own in by_ref.values():
        zero = next((i for i in own if i.finding.kind == "scaled to 0"), None)
        for item in own:
            if zero is not None and item is not zero:
                item.fold(zero, item.finding.evidence)


def _fold_into_unbound_claims(items: list[_Item], by_ref: dict[str, list[_Item]]) -> None:
    """Pods waiting for an unbound claim: the claim is the cause."""
    for item in items:
        if item.finding.kind == "Pending: unbound PVC":
            for claim in filter(None, item.subject.split(",")):
                cause = next(iter(by_ref.get(f"PersistentVolumeClaim/{claim}", [])), None)
                if cause is not None:
                    item.fold(cause, item.finding.evidence)
                    break


def _down_components(by_ref: dict[str, list[_Item]], index: Index) -> dict[str, _Item]:
    """Component -> the cause that keeps it down. A workload is down when none of its pods is
    ready and something other than a probe explains it (or it has no replica at all)."""
    down: dict[str, _Item] = {}
    for ref, own in by_ref.items():
        w = own[0].workload
        if w is None or not w.component:
            continue
        ready = sum(1 for p in index.pods.get(ref, []) if is_ready(p))
        cause = next((i for i in own if i.finding.kind not in CONSEQUENCE_KINDS), None)
        if cause is not None and ready == 0:
            down.setdefault(w.component, cause)
    return down


def _fold_probe_failures(items: list[_Item], by_ref: dict[str, list[_Item]],
                         down: dict[str, _Item]) -> None:
    """A failing probe or Job: into an earlier cause on its own workload, else into what
    keeps a component it needs down."""
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


def _fold_services_without_endpoints(items: list[_Item], by_ref: dict[str, list[_Item]],
                                     index: Index, snapshot: Snapshot) -> None:
    """A Service without endpoints is explained by what keeps its pods from being ready."""
    services = {name_of(s): s for s in snapshot.services}
    for item in items:
        if item.finding.kind != "Service without endpoints" or item.into is not None:
            continue
        selector = dig(services.get(item.finding.object.split("/", 1)[1], {}), "spec", "selector",
                       default={})
        for ref, w in index.workloads.items():
            pods = index.pods.get(ref, [])
            if not (matches(selector, dict(w.template_labels))
                    or any(matches(selector, labels_of(p)) for p in pods)):
                continue
            cause = next(iter(by_ref.get(ref, [])), None)
            if cause is not None:
                item.fold(cause, f"{item.finding.object} has no ready endpoint")
                break


def _finding_of(item: _Item) -> Finding:
    """The finding of a cause left after folding, its evidence naming why and what it causes."""
    f = item.finding
    evidence = f.evidence
    if item.because:
        evidence += "; " + "; ".join(item.because)
    elif f.kind == "scaled to 0" and item.workload and item.workload.component:
        evidence += f"; the {item.workload.component} is down"
    if item.consequences:
        evidence += CAUSES + "; ".join(item.consequences)
    return Finding(f.kind, f.object, evidence, f.fix, f.observed_at, tuple(item.consequences))


def scaled_to_zero(index: Index, namespace: str = "", observed_at: str = "",
                   target: Target | None = None) -> list[_Item]:
    items = []
    in_ns = f" -n {namespace}" if namespace else ""
    target = target or Target()
    for w in index.workloads.values():
        if w.replicas == 0:
            configured = target.configured_replicas(w.component)
            items.append(_Item(Finding(
                "scaled to 0", w.ref, f"{w.title} has 0 replicas",
                f"scale it back: re-run {w.deploy} (it applies the configured replicas), or "
                f"`kubectl{in_ns} scale {w.kind.lower()} {w.name} --replicas={configured}`",
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
        if not is_live(pod):
            continue
        w = index.of_pod[name_of(pod)]
        placed = sum(1 for p in index.pods.get(w.ref, []) if dig(p, "spec", "nodeName"))
        found = container_symptoms(pod, target, logs=snapshot.logs, peaks=snapshot.peaks,
                                   deploy=w.deploy, events=events)
        pending = pending_symptom(pod, events, snapshot.nodes, snapshot.pvcs, target,
                                  requested=snapshot.requested, workload=w, scheduled=placed)
        found += [pending] if pending else []
        found += probe_symptoms(pod, events)
        symptoms += [(pod, s) for s in found]
    items = _grouped(index, symptoms, at) + scaled_to_zero(index, snapshot.namespace, at, target)

    def attach(findings: list[Finding]) -> None:
        for f in findings:
            stamped = Finding(f.kind, f.object, f.evidence, f.fix, at, f.consequences)
            items.append(_Item(stamped, index.workloads.get(f.object)))

    attach(failed_create_findings(snapshot, index, events))
    attach(image_findings(snapshot, index, images or {}, target))
    attach(pvc_findings(snapshot.pvcs, snapshot.storage_classes, events, target))
    attach(service_findings(snapshot.services, snapshot.endpoints, snapshot.pods))
    attach(job_findings(snapshot.jobs, snapshot.pods, snapshot.logs))
    attach(hpa_findings(snapshot.hpas, snapshot.metrics_api, target))
    attach(ingress_findings(snapshot.ingresses, snapshot.ingress_classes, target,
                            observed_time(snapshot)))
    return _fold(items, index, snapshot)
