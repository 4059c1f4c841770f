"""Every doctor diagnosis induced for real on the test cluster, in a scratch namespace.

All broken workloads are created first, then the doctor is polled until every
expected finding appears (or a deadline passes); the namespace is deleted at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PYTHON_IMAGE
from tests.integration.conftest import PREFIX, poll_until
from todo_deploy import doctor
from todo_deploy.config import load_settings
from todo_deploy.doctor import Finding, Target
from todo_deploy.kube import Kube
from todo_deploy.stages.aiops import stage

pytestmark = pytest.mark.cluster

IMAGE = PYTHON_IMAGE
DEADLINE_S = 180


def _pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    base = {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"case": name}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [base | container], **spec},
    }


MIGRATE = "print('relation tasks does not exist'); raise SystemExit(1)"
OOM = "x = b'x' * (200 * 1024 * 1024); import time; time.sleep(3600)"


def broken_objects() -> list[dict[str, Any]]:
    return [
        _pod("neverpull", {"image": "localcluster/python:does-not-exist",
                           "imagePullPolicy": "Never", "command": ["sleep", "3600"]}),
        _pod("crash", {"command": ["python3", "-c",
                                   "import sys; print('boom'); sys.exit(3)"]}),
        _pod("oom", {"command": ["python3", "-c", OOM],
                     "resources": {"limits": {"memory": "32Mi"},
                                   "requests": {"memory": "32Mi"}}}),
        _pod("greedy", {"command": ["sleep", "3600"],
                        "resources": {"requests": {"cpu": "500"}}}),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "nowhere"},
            "spec": {"storageClassName": "no-such-class", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Mi"}}},
        },
        _pod("unready", {
            "command": ["python3", "-m", "http.server", "8080", "--directory", "/tmp/empty"],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                               "periodSeconds": 2, "failureThreshold": 1},
        }),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-secret"},
            "stringData": {"PRESENT": "x"},
        },
        _pod("nosecret", {"command": ["sleep", "3600"], "env": [{
            "name": "AUTH_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "AUTH_SECRET"}},
        }]}),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "orphan"},
            "spec": {"selector": {"app": "nothing-matches"},
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        },
        {  # the test cluster has no metrics-server: this autoscaler can never scale
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "scaler"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate"},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "migrate", "image": IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python3", "-c", MIGRATE]}],
            }}},
        },
    ]


# The unready pod needs an empty directory to serve: make it before the server starts.
def _fix_unready(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["metadata"]["name"] == "unready":
        container = obj["spec"]["containers"][0]
        serve = " ".join(container["command"])
        container["command"] = ["sh", "-c", f"mkdir -p /tmp/empty && exec {serve}"]
    return obj


def _new_namespace(core: Any, prefix: str) -> str:
    """A scratch namespace (no Pod Security labels) whose default ServiceAccount has its
    token: on v1.20 pods are refused until the token controller has added it."""
    namespace = f"{PREFIX}{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        accounts = core.list_namespaced_service_account(namespace).items
        if any(a.metadata.name == "default" and a.secrets for a in accounts):
            break
        time.sleep(0.5)
    return namespace


@pytest.fixture(scope="module")
def scratch(kube_cluster: None) -> Iterator[tuple[Any, str]]:
    from kubernetes import client, config, utils

    api = config.new_client_from_config()
    core = client.CoreV1Api(api)
    namespace = _new_namespace(core, "doctor")
    try:
        for obj in broken_objects():
            utils.create_from_dict(api, _fix_unready(obj), namespace=namespace)
        yield api, namespace
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)


EXPECTED = {
    "neverpull": ("image not found", "Pod/neverpull"),
    "crash": ("CrashLoopBackOff", "Pod/crash"),
    "oom": ("OOMKilled", "Pod/oom"),
    "greedy": ("Pending: insufficient cpu", "Pod/greedy"),
    "pvc": ("unbound PVC", "PersistentVolumeClaim/nowhere"),
    "probe": ("Readiness probe failing", "Pod/unready"),
    "config": ("missing config", "Pod/nosecret"),
    "service": ("Service without endpoints", "Service/orphan"),
    "job": ("failed Job", "Job/migrate"),
    "hpa": ("cannot scale", "HorizontalPodAutoscaler/scaler"),
}


def _expected_found(kube: Kube, namespace: str) -> dict[str, Finding]:
    findings = doctor.diagnose(doctor.collect(kube, namespace), Target("existing"))
    return {
        case: f
        for case, (kind, obj) in EXPECTED.items()
        for f in findings
        if f.kind == kind and f.object == obj
    }


def _all_found(found: dict[str, Finding]) -> bool:
    crash = found.get("crash")
    return len(found) == len(EXPECTED) and crash is not None and "boom" in crash.evidence


def _poll(namespace: str, interval_s: float = 1.0) -> dict[str, Finding]:
    kube = Kube()
    return poll_until(lambda: _expected_found(kube, namespace), _all_found, DEADLINE_S, interval_s)


def test_doctor_diagnoses_every_induced_failure(scratch: tuple[Any, str], tmp_path: Any) -> None:
    _, namespace = scratch
    found = _poll(namespace)
    missing = sorted(set(EXPECTED) - set(found))
    assert not missing, f"not diagnosed within {DEADLINE_S}s: {missing}"

    pull = found["neverpull"]
    assert "ErrImageNeverPull" in pull.evidence
    assert "localcluster/python:does-not-exist" in pull.evidence
    assert "inv build" in pull.fix and "imagePullPolicy Never" in pull.fix

    crash = found["crash"]
    assert "code 3" in crash.evidence and "boom" in crash.evidence
    assert f"kubectl logs -n {namespace} crash -c main --previous" in crash.fix

    oom = found["oom"]
    assert "OOMKilled" in oom.evidence and "memory limit 32Mi" in oom.evidence
    assert "peak" in oom.evidence
    assert "resources.limits.memory" in oom.fix and "64Mi" in oom.fix

    greedy = found["greedy"]
    assert "Insufficient cpu" in greedy.evidence
    assert "each pod requests 500 cpu, the largest node allocates" in greedy.evidence
    assert "each pod asks for more than a node has" in greedy.fix
    assert "add a node with more cpu" in greedy.fix and "MINIKUBE" not in greedy.fix

    hpa = found["hpa"]
    assert "no metrics API" in hpa.evidence and "metrics.k8s.io" in hpa.evidence
    assert "metrics-server" in hpa.fix

    pvc = found["pvc"]
    assert "'no-such-class' does not exist" in pvc.evidence
    assert "standard (default)" in pvc.evidence
    assert "storageClassName" in pvc.fix

    probe = found["probe"]
    assert "readiness probe http GET :8080/ready answered HTTP 404" in probe.evidence
    assert ":8080/ready" in probe.fix

    config_error = found["config"]
    assert "AUTH_SECRET" in config_error.evidence and "app-secret" in config_error.evidence
    assert "add key AUTH_SECRET to Secret/app-secret" in config_error.fix

    service = found["service"]
    assert "app=nothing-matches matches no pod" in service.evidence
    assert "spec.selector of Service/orphan" in service.fix

    job = found["job"]
    assert "BackoffLimitExceeded" in job.evidence
    assert "exited 1" in job.evidence and "relation tasks does not exist" in job.evidence
    assert "kubectl delete job migrate" in job.fix

    # The same namespace through the stage: every finding is a failed gate check.
    result = stage.run(
        load_settings(root=tmp_path, environ={"CLUSTER_PROVIDER": "existing",
                                               "NAMESPACE": namespace}),
        "doctor",
        log=lambda _: None,
    )
    assert not result.passed
    failed = {c.name for c in result.failures}
    for kind, obj in EXPECTED.values():
        assert f"{kind}: {obj}" in failed
    assert all(f["observed_at"] for f in result.details["findings"])


def test_doctor_passes_a_healthy_namespace_and_reports_a_missing_one(
    kube_cluster: None, tmp_path: Any
) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config()
    core = client.CoreV1Api(api)
    namespace = _new_namespace(core, "doctor-ok")
    try:
        core.create_namespaced_pod(namespace, _pod("fine", {"command": ["sleep", "3600"]}))
        loaded = load_settings(root=tmp_path, environ={"CLUSTER_PROVIDER": "existing"})
        # the pod starts: no finding once it runs
        result = poll_until(lambda: stage.run(loaded, "doctor", namespace=namespace, log=lambda _: None),
                            lambda r: r.passed, deadline_s=120)
        assert result.passed
        assert [c.name for c in result.checks] == ["doctor"]
        assert "no problem found" in result.checks[0].evidence

        absent = f"{PREFIX}doctor-absent-x"
        gone = stage.run(loaded, "doctor", namespace=absent, log=lambda _: None)
        assert not gone.passed
        assert gone.failures[0].evidence == f"namespace {absent} does not exist"
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)
