"""The doctor on autoscalers that cannot scale: no metrics API, or metrics they cannot read."""

from __future__ import annotations

from typing import Any

from todo_deploy.doctor import Snapshot, Target, diagnose
from todo_deploy.doctor.autoscaling import hpa_findings


def hpa(conditions: list[dict[str, Any]] | None = None, replicas: int | None = 2) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": conditions or []}
    if replicas is not None:
        status["currentReplicas"] = replicas
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "todo-chatbot-backend"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "todo-chatbot-backend"}},
            "status": status}


UNREADABLE = {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
              "message": "the HPA was unable to compute the replica count: unable to get metrics "
                         "for resource cpu: no metrics returned from resource metrics API"}


def test_no_metrics_api_is_one_finding_per_autoscaler_with_the_providers_fix() -> None:
    (finding,) = hpa_findings([hpa()], metrics_api=False, target=Target("minikube", minikube_profile="p1"))
    assert finding.object == "HorizontalPodAutoscaler/todo-chatbot-backend"
    assert finding.kind == "cannot scale"
    assert "no metrics API" in finding.evidence and "metrics.k8s.io" in finding.evidence
    assert "Deployment/todo-chatbot-backend stays at 2 replicas" in finding.evidence
    assert finding.fix == "`minikube addons enable metrics-server -p p1`"
    (other,) = hpa_findings([hpa()], metrics_api=False, target=Target("kind"))
    assert "install metrics-server" in other.fix and "minikube" not in other.fix


def test_a_served_api_whose_metrics_cannot_be_read_quotes_the_autoscaler() -> None:
    (finding,) = hpa_findings([hpa([UNREADABLE])], metrics_api=True, target=Target("existing"))
    assert "FailedGetResourceMetric: the HPA was unable to compute" in finding.evidence


def test_a_working_autoscaler_is_no_finding() -> None:
    scaling = {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"}
    assert hpa_findings([hpa([scaling])], metrics_api=True, target=Target()) == []
    assert hpa_findings([hpa([UNREADABLE])], metrics_api=None, target=Target()) != []
    assert hpa_findings([hpa()], metrics_api=None, target=Target()) == []  # nothing known: nothing said


def test_diagnose_reports_it_from_a_snapshot() -> None:
    snapshot = Snapshot(namespace="todo", observed_at="2026-12-07T00:00:00+00:00",
                        hpas=[hpa(replicas=None)], metrics_api=False)
    findings = diagnose(snapshot, Target("minikube"))
    assert [f.object for f in findings] == ["HorizontalPodAutoscaler/todo-chatbot-backend"]
    assert "stays at" not in findings[0].evidence  # replicas unknown: not guessed
