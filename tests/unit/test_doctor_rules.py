"""Each doctor rule on recorded object data (raw API JSON, and the client's to_dict() form)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from todo_deploy.stages.aiops import doctor
from todo_deploy.stages.aiops.doctor import Snapshot


def pod(name: str, containers: list[dict[str, Any]], statuses: list[dict[str, Any]],
        phase: str = "Running", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": extra.pop("labels", {"app": name})},
        "spec": {"containers": containers, "restartPolicy": extra.pop("restart", "Always"),
                 **extra.pop("spec", {})},
        "status": {"phase": phase, "containerStatuses": statuses, **extra},
    }


def waiting(name: str, reason: str, message: str = "", **status: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": status.pop("restarts", 0),
            "state": {"waiting": {"reason": reason, "message": message}}, **status}


def event(kind: str, name: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"involvedObject": {"kind": kind, "name": name, **extra.pop("obj", {})},
            "reason": reason, "message": message, "type": extra.pop("type", "Warning"),
            "lastTimestamp": extra.pop("at", "2025-01-01T00:00:00Z"), **extra}


@pytest.mark.parametrize(
    ("provider", "registry", "expected"),
    [
        ("minikube", "", "`inv build` then `inv cluster` (it runs `minikube image load`"),
        ("kind", "", "`kind load docker-image`"),
        ("existing", "", "a node that shares the Docker daemon"),
        ("minikube", "registry.example:5000", "`inv build --push` (IMAGE_REGISTRY=registry."),
    ],
)
def test_image_pull_fix_names_the_delivery_step_per_provider(
    provider: str, registry: str, expected: str
) -> None:
    p = pod("backend-1", [{"name": "backend", "image": "todo-backend:abc123"}],
            [waiting("backend", "ErrImageNeverPull",
                     'Container image "todo-backend:abc123" is not present with pull policy of Never')])
    [finding] = doctor.pod_container_findings([p], provider=provider, registry=registry)
    assert finding.object == "Pod/backend-1"
    assert finding.kind == "image not found"
    assert "ErrImageNeverPull for image todo-backend:abc123" in finding.evidence
    assert expected in finding.fix
    assert "imagePullPolicy Never" in finding.fix


def test_image_pull_backoff_says_the_kubelet_tried_a_registry() -> None:
    p = pod("web", [{"name": "web", "image": "todo-frontend:1"}],
            [waiting("web", "ImagePullBackOff", 'Back-off pulling image "todo-frontend:1"')])
    [finding] = doctor.pod_container_findings([p], provider="kind")
    assert "ImagePullBackOff" in finding.evidence
    assert "tried to pull it from a registry" in finding.fix


def test_crash_loop_reports_exit_code_and_last_log_lines() -> None:
    status = waiting("main", "CrashLoopBackOff", "back-off 20s restarting failed container",
                     restarts=3, lastState={"terminated": {"exitCode": 3, "reason": "Error"}})
    p = pod("crash", [{"name": "main", "image": "x"}], [status])
    logs = {"crash/main": "starting\nboom\n"}
    [finding] = doctor.pod_container_findings([p], logs=logs)
    assert finding.kind == "CrashLoopBackOff"
    assert "exits with code 3" in finding.evidence and "restarted 3 times" in finding.evidence
    assert "last log lines: starting | boom" in finding.evidence
    assert "kubectl logs crash -c main --previous" in finding.fix


def test_oomkilled_with_and_without_a_peak() -> None:
    status = {"name": "main", "ready": True, "restartCount": 2, "state": {"running": {}},
              "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    spec = {"name": "main", "image": "x", "resources": {"limits": {"memory": "32Mi"}}}
    p = pod("oom", [spec], [status])
    [unknown] = doctor.pod_container_findings([p])
    assert unknown.kind == "OOMKilled"
    assert "memory limit 32Mi, peak unknown: at least the limit" in unknown.evidence
    assert "e.g. 64Mi" in unknown.fix
    assert doctor.peak_requests([p]) == [("oom", "main")]
    [known] = doctor.pod_container_findings([p], peaks={"oom/main": 33 * 2**20})
    assert "peak 33Mi" in known.evidence


def test_oom_in_crash_loop_is_reported_once_as_oom() -> None:
    status = waiting("main", "CrashLoopBackOff", restarts=4,
                     lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    p = pod("oom", [{"name": "main", "image": "x"}], [status])
    assert [f.kind for f in doctor.pod_container_findings([p])] == ["OOMKilled"]


def test_pending_for_cpu_compares_request_with_allocatable() -> None:
    p = pod("greedy", [{"name": "main", "image": "x", "resources": {"requests": {"cpu": "500"}}}],
            [], phase="Pending",
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                         "message": "0/1 nodes are available: 1 Insufficient cpu."}])
    events = [event("Pod", "greedy", "FailedScheduling",
                    "0/1 nodes are available: 1 Insufficient cpu.", at=None,
                    eventTime="2025-01-01T00:00:01Z")]
    nodes = [{"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}}]
    [finding] = doctor.pending_findings([p], events, nodes, [])
    assert finding.kind == "Pending: insufficient cpu"
    assert "cpu: requests 500 vs 2 allocatable" in finding.evidence
    assert "resources.requests.cpu" in finding.fix and "MINIKUBE_CPUS" in finding.fix


def test_pending_for_memory_uses_binary_units() -> None:
    p = pod("big", [{"name": "m", "image": "x", "resources": {"requests": {"memory": "8Gi"}}}],
            [], phase="Pending",
            conditions=[{"type": "PodScheduled", "status": "False"}])
    events = [event("Pod", "big", "FailedScheduling",
                    "0/1 nodes are available: 1 Insufficient memory.")]
    nodes = [{"status": {"allocatable": {"memory": "4019532Ki"}}}]
    [finding] = doctor.pending_findings([p], events, nodes, [])
    assert "memory: requests 8Gi vs 3.8Gi allocatable" in finding.evidence
    assert "MINIKUBE_MEMORY" in finding.fix


def test_pending_on_an_unbound_claim_points_at_the_pvc() -> None:
    p = pod("db-0", [{"name": "db", "image": "x"}], [], phase="Pending",
            conditions=[{"type": "PodScheduled", "status": "False"}],
            spec={"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]})
    events = [event("Pod", "db-0", "FailedScheduling",
                    "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims.")]
    pvcs = [{"metadata": {"name": "data"}, "status": {"phase": "Pending"}}]
    [finding] = doctor.pending_findings([p], events, [], pvcs)
    assert finding.kind == "Pending: unbound PVC"
    assert "PersistentVolumeClaim/data" in finding.evidence


STANDARD = {"metadata": {"name": "standard", "annotations": {
    "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "hostpath",
    "volumeBindingMode": "Immediate"}


def test_pvc_with_a_missing_storage_class() -> None:
    pvc = {"metadata": {"name": "nowhere"}, "spec": {"storageClassName": "fast"},
           "status": {"phase": "Pending"}}
    events = [event("PersistentVolumeClaim", "nowhere", "ProvisioningFailed",
                    'storageclass.storage.k8s.io "fast" not found')]
    [finding] = doctor.pvc_findings([pvc], [STANDARD], events)
    assert finding.object == "PersistentVolumeClaim/nowhere"
    assert "StorageClass 'fast' does not exist (classes: standard (default))" in finding.evidence
    assert '"fast" not found' in finding.evidence
    assert "storageClassName" in finding.fix


def test_pvc_without_class_and_no_default_class() -> None:
    pvc = {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}}
    plain = {"metadata": {"name": "slow"}, "provisioner": "x"}
    [finding] = doctor.pvc_findings([pvc], [plain], [])
    assert "no default StorageClass" in finding.evidence
    assert "default-storageclass" in finding.fix


def test_pending_pvc_that_waits_for_its_consumer_or_is_bound_is_fine() -> None:
    lazy = {"metadata": {"name": "lazy"}, "provisioner": "x",
            "volumeBindingMode": "WaitForFirstConsumer"}
    pvcs = [
        {"metadata": {"name": "a"}, "spec": {"storageClassName": "lazy"},
         "status": {"phase": "Pending"}},
        {"metadata": {"name": "b"}, "spec": {"storageClassName": "standard"},
         "status": {"phase": "Bound"}},
    ]
    assert doctor.pvc_findings(pvcs, [STANDARD, lazy], []) == []


def test_failing_readiness_probe_names_endpoint_and_answer() -> None:
    spec = {"name": "web", "image": "x", "readinessProbe": {
        "httpGet": {"path": "/readyz", "port": 3000, "scheme": "HTTP"}}}
    status = {"name": "web", "ready": False, "restartCount": 0, "state": {"running": {}}}
    p = pod("web-1", [spec], [status])
    events = [event("Pod", "web-1", "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                    obj={"fieldPath": "spec.containers{web}"}, count=7)]
    [finding] = doctor.probe_findings([p], events)
    assert finding.kind == "Readiness probe failing"
    assert "readiness probe http GET :3000/readyz answered HTTP 503" in finding.evidence
    assert "7 failures" in finding.evidence
    assert ":3000/readyz" in finding.fix


def test_liveness_connection_refused_and_ready_containers_are_not_flagged() -> None:
    spec = {"name": "api", "image": "x",
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8000}}}
    status = {"name": "api", "ready": True, "restartCount": 2, "state": {"running": {}}}
    p = pod("api-1", [spec], [status])
    events = [
        event("Pod", "api-1", "Unhealthy", "Liveness probe failed: Get "
              '"http://10.244.0.9:8000/health": dial tcp 10.244.0.9:8000: connect: '
              "connection refused", obj={"fieldPath": "spec.containers{api}"}),
        event("Pod", "api-1", "Unhealthy", "Readiness probe failed: HTTP probe failed with "
              "statuscode: 500", obj={"fieldPath": "spec.containers{api}"}),
    ]
    [finding] = doctor.probe_findings([p], events)  # ready now: the old readiness event is stale
    assert finding.kind == "Liveness probe failing"
    assert "GET :8000/health answered: Get" in finding.evidence
    assert "connection refused" in finding.evidence


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        ('secret "todo-chatbot-backend" not found',
         "create Secret/todo-chatbot-backend in the namespace"),
        ("couldn't find key AUTH_SECRET in Secret todo/todo-chatbot-backend",
         "add key AUTH_SECRET to Secret/todo-chatbot-backend"),
        ('configmap "todo-chatbot-config" not found', "create ConfigMap/todo-chatbot-config"),
    ],
)
def test_missing_secret_configmap_or_key(message: str, fix: str) -> None:
    p = pod("api-2", [{"name": "api", "image": "x"}],
            [waiting("api", "CreateContainerConfigError", message)])
    [finding] = doctor.pod_container_findings([p])
    assert finding.kind == "missing config"
    assert message in finding.evidence
    assert fix in finding.fix


def test_service_selector_matching_nothing_and_matching_unready_pods() -> None:
    services = [
        {"metadata": {"name": "orphan"}, "spec": {"selector": {"app": "ghost"}}},
        {"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}}},
        {"metadata": {"name": "ok"}, "spec": {"selector": {"app": "ok"}}},
        {"metadata": {"name": "manual"}, "spec": {}},
    ]
    endpoints = [
        {"metadata": {"name": "orphan"}},
        {"metadata": {"name": "api"}, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}]}]},
        {"metadata": {"name": "ok"}, "subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
    ]
    pods = [pod("api-1", [], [], labels={"app": "api"}), pod("ok-1", [], [], labels={"app": "ok"})]
    findings = {f.object: f for f in doctor.service_findings(services, endpoints, pods)}
    assert set(findings) == {"Service/orphan", "Service/api"}
    assert "selector app=ghost matches no pod" in findings["Service/orphan"].evidence
    assert "app=api" in findings["Service/orphan"].evidence  # shows the labels that exist
    assert "spec.selector of Service/orphan" in findings["Service/orphan"].fix
    assert "matches 1 pod(s) (api-1) but none is Ready" in findings["Service/api"].evidence


def test_failed_migration_job_with_its_pod_log() -> None:
    job = {"metadata": {"name": "todo-chatbot-migrate-abc12345"},
           "spec": {"backoffLimit": 0},
           "status": {"failed": 1, "conditions": [{
               "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
               "message": "Job has reached the specified backoff limit"}]}}
    job_pod = pod("todo-chatbot-migrate-abc12345-x7k", [{"name": "migrate", "image": "x"}],
                  [{"name": "migrate", "ready": False, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                  phase="Failed", restart="Never",
                  labels={"job-name": "todo-chatbot-migrate-abc12345"})
    assert doctor.log_requests([job_pod]) == [("todo-chatbot-migrate-abc12345-x7k", "migrate", False)]
    logs = {"todo-chatbot-migrate-abc12345-x7k/migrate": "connecting\nFATAL: password authentication failed"}
    [finding] = doctor.job_findings([job], [job_pod], logs)
    assert finding.object == "Job/todo-chatbot-migrate-abc12345"
    assert "BackoffLimitExceeded" in finding.evidence
    assert "migrate exited 1" in finding.evidence
    assert "FATAL: password authentication failed" in finding.evidence
    assert "DATABASE_URL" in finding.fix
    # the job's pod (restartPolicy Never) is not also reported as a crash loop
    assert doctor.pod_container_findings([job_pod]) == []


def test_rules_read_the_clients_to_dict_snake_case_too() -> None:
    p = {"metadata": {"name": "crash"},
         "spec": {"containers": [{"name": "main", "image": "x"}], "restart_policy": "Always"},
         "status": {"phase": "Running", "container_statuses": [{
             "name": "main", "ready": False, "restart_count": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": None}},
             "last_state": {"terminated": {"exit_code": 127, "reason": "Error"}}}]}}
    [finding] = doctor.pod_container_findings([p])
    assert "exits with code 127 (the command was not found in the image)" in finding.evidence


def test_a_healthy_namespace_has_no_findings() -> None:
    spec = {"name": "api", "image": "x", "readinessProbe": {"httpGet": {"path": "/ready",
                                                                         "port": 8000}}}
    p = pod("api-1", [spec], [{"name": "api", "ready": True, "restartCount": 0,
                               "state": {"running": {}}}], labels={"app": "api"})
    snapshot = Snapshot(
        namespace="todo", pods=[p],
        services=[{"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}}}],
        endpoints=[{"metadata": {"name": "api"}, "subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]}],
        pvcs=[{"metadata": {"name": "d"}, "spec": {}, "status": {"phase": "Bound"}}],
        storage_classes=[STANDARD],
        jobs=[{"metadata": {"name": "m"}, "spec": {"backoffLimit": 0},
               "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}],
    )
    assert doctor.diagnose(snapshot) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("2", Decimal(2)), ("32Mi", Decimal(32 * 2**20)),
     ("1G", Decimal(10**9)), ("1e3", Decimal(1000)), ("bogus", None)],
)
def test_quantity(text: str, value: Decimal | None) -> None:
    assert doctor.quantity(text) == value
