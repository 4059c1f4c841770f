"""HorizontalPodAutoscalers that cannot scale: no metrics API, or metrics it cannot read.

An HPA scales on the pods' CPU use, which it reads from the resource metrics API
(metrics.k8s.io, served by metrics-server). Without it the HPA stays at its current
replicas forever and says so only in its conditions (ScalingActive=False,
FailedGetResourceMetric) and events: nothing fails, the app just never scales.
"""

from __future__ import annotations

from collections.abc import Iterable

from todo_deploy.doctor.model import Finding, Obj, Target, dig, name_of

METRICS_GROUP = "metrics.k8s.io"
# Newest first: v2 (1.23+) and v2beta2 carry status.conditions; v1 only an annotation.
HPA_VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2", "autoscaling/v1")
UNREADABLE = ("FailedGetResourceMetric", "FailedGetPodsMetric", "FailedGetExternalMetric",
              "FailedGetObjectMetric", "FailedGetContainerResourceMetric")


def metrics_fix(target: Target) -> str:
    """How this provider's cluster gets a resource metrics API."""
    if target.provider == "minikube":
        return f"`minikube addons enable metrics-server -p {target.minikube_profile}`"
    return ("install metrics-server (`kubectl apply -f` its components.yaml from the "
            "kubernetes-sigs/metrics-server releases; on kind add `--kubelet-insecure-tls` to its "
            "args), or turn autoscaling off in the chart's values")


def _not_scaling(hpa: Obj) -> str:
    """The HPA's own account of why it cannot read its metrics, or ''."""
    for condition in dig(hpa, "status", "conditions", default=[]) or []:
        if (condition.get("type") == "ScalingActive" and condition.get("status") == "False"
                and condition.get("reason") in UNREADABLE):
            return f"{condition['reason']}: {condition.get('message', '')}".strip()
    return ""


def hpa_findings(hpas: Iterable[Obj], metrics_api: bool | None, target: Target) -> list[Finding]:
    """One finding per HPA that cannot scale. `metrics_api`: whether the cluster serves
    metrics.k8s.io (None: not known)."""
    findings = []
    for hpa in hpas:
        scale_target = dig(hpa, "spec", "scaleTargetRef", default={}) or {}
        what = f"{scale_target.get('kind', 'Deployment')}/{scale_target.get('name', '?')}"
        replicas = dig(hpa, "status", "currentReplicas")
        stuck = f"; {what} stays at {replicas} replicas" if replicas is not None else ""
        own = _not_scaling(hpa)
        if metrics_api is False:
            evidence = (f"no metrics API: the cluster does not serve {METRICS_GROUP}, so the "
                        f"autoscaler cannot read CPU use and never scales{stuck}")
        elif own:
            evidence = f"the autoscaler cannot read its metrics ({own}){stuck}"
        else:
            continue
        findings.append(Finding("cannot scale", f"HorizontalPodAutoscaler/{name_of(hpa)}",
                                evidence, metrics_fix(target)))
    return findings
