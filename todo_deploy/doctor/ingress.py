"""Ingresses nobody serves: no address after a while, and why (issue 23, item 3).

An ingress controller that serves an Ingress's class writes the address it listens on
into status.loadBalancer.ingress. Without one the Ingress is accepted and stays
without an address forever: nothing fails, the host just never answers. Where no
IngressClass matches the Ingress's class, no controller is installed for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from todo_deploy.doctor.model import Finding, Obj, Snapshot, Target, dig, name_of

INGRESS_VERSION = "networking.k8s.io/v1"
# A controller gives a new Ingress its address within seconds; before this, none yet is normal.
ADDRESS_GRACE_S = 60
CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # the pre-IngressClass way to name one
DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"


def controller_fix(target: Target) -> str:
    """How this provider's cluster gets an ingress controller."""
    if target.provider == "minikube":
        return (f"no ingress controller: `minikube addons enable ingress -p {target.minikube_profile}` "
                "(or `inv cluster` with INGRESS_HOST set)")
    return ("no ingress controller: install one that serves the class (ingress-nginx's Helm "
            "chart; on kind its kind deploy manifest), or set INGRESS_CLASS to the class the "
            "cluster has (`kubectl get ingressclass`)")


def _class_of(ingress: Obj) -> str:
    annotations = dig(ingress, "metadata", "annotations", default={}) or {}
    return str(dig(ingress, "spec", "ingressClassName") or annotations.get(CLASS_ANNOTATION) or "")


def _class_served(wanted: str, classes: Iterable[Obj]) -> bool:
    """An IngressClass of that name (no name: one marked the cluster's default)."""
    for cls in classes:
        if wanted and name_of(cls) == wanted:
            return True
        annotations = dig(cls, "metadata", "annotations", default={}) or {}
        if not wanted and annotations.get(DEFAULT_CLASS) == "true":
            return True
    return False


def _age_s(ingress: Obj, now: datetime) -> float | None:
    created = dig(ingress, "metadata", "creationTimestamp")
    if not created:
        return None
    return (now - datetime.fromisoformat(str(created))).total_seconds()


def observed_time(snapshot: Snapshot) -> datetime:
    """When the snapshot was read (now, when it does not say)."""
    if snapshot.observed_at:
        return datetime.fromisoformat(snapshot.observed_at)
    return datetime.now(UTC)


def ingress_findings(
    ingresses: Iterable[Obj], classes: Iterable[Obj], target: Target, now: datetime,
    grace_s: float = ADDRESS_GRACE_S,
) -> list[Finding]:
    """One finding per Ingress still without an address `grace_s` after its creation."""
    classes = list(classes)
    findings = []
    for ingress in ingresses:
        if dig(ingress, "status", "loadBalancer", "ingress"):
            continue
        age = _age_s(ingress, now)
        if age is not None and age < grace_s:
            continue
        wanted = _class_of(ingress)
        named = f"class {wanted}" if wanted else "the default class"
        waited = f"after {age:.0f} s" if age is not None else "yet"
        if _class_served(wanted, classes):
            evidence = (f"the Ingress has no address {waited}: IngressClass {wanted or '(default)'} "
                        "exists but its controller has not admitted it, so its host does not answer")
            fix = ("the ingress controller's pods and logs (`kubectl get pods -A -l "
                   "app.kubernetes.io/name=ingress-nginx`)")
        else:
            evidence = (f"no ingress controller: no IngressClass serves {named}, so the Ingress "
                        f"has no address {waited} and its host does not answer")
            fix = controller_fix(target)
        findings.append(Finding("no address", f"Ingress/{name_of(ingress)}", evidence, fix))
    return findings
