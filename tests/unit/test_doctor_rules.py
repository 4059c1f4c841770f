"""The diagnosis engine on recorded object data (the API's JSON): each rule, the grouping
per workload, causes before their consequences, stale events, provider-fitting hints."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from todo_deploy import doctor
from todo_deploy.artifacts import ImageRef
from todo_deploy.doctor import Snapshot, Target, model, objects, observe, symptoms
from todo_deploy.kube import quantity

NOW = "2025-01-01T00:10:00Z"
PROVIDERS = ("minikube", "kind", "docker-desktop", "existing")


def pod(name: str, containers: list[dict[str, Any]], statuses: list[dict[str, Any]],
        phase: str = "Running", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "labels": extra.pop("labels", {"app": name}),
            "uid": extra.pop("uid", f"uid-{name}"),
            "creationTimestamp": extra.pop("created", "2025-01-01T00:00:00Z")}
    if "owner" in extra:
        kind, owner = extra.pop("owner")
        meta["ownerReferences"] = [{"kind": kind, "name": owner, "controller": True}]
    return {
        "metadata": meta,
        "spec": {"containers": containers, "restartPolicy": extra.pop("restart", "Always"),
                 **extra.pop("spec", {})},
        "status": {"phase": phase, "containerStatuses": statuses, **extra},
    }


def waiting(name: str, reason: str, message: str = "", **status: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": status.pop("restarts", 0),
            "state": {"waiting": {"reason": reason, "message": message}}, **status}


def running(name: str, ready: bool = True, **status: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": status.pop("restarts", 0),
            "state": {"running": {}}, **status}


def event(kind: str, name: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"involvedObject": {"kind": kind, "name": name, **extra.pop("obj", {})},
            "reason": reason, "message": message, "type": extra.pop("type", "Warning"),
            "lastTimestamp": extra.pop("at", "2025-01-01T00:05:00Z"), **extra}


def one(symptoms: list[symptoms.Symptom]) -> symptoms.Symptom:
    assert len(symptoms) == 1, symptoms
    return symptoms[0]


# --- per-pod rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "registry", "expected"),
    [
        ("minikube", "", "`inv build` then `inv cluster` (it runs `minikube image load`"),
        ("kind", "", "`kind load docker-image`"),
        ("docker-desktop", "", "Docker Desktop's Kubernetes shares the Docker daemon"),
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
    symptom = one(symptoms.container_symptoms(p, Target(provider, registry)))
    assert symptom.kind == "image not found"
    assert "ErrImageNeverPull for image todo-backend:abc123" in symptom.evidence
    assert expected in symptom.fix
    assert "imagePullPolicy Never" in symptom.fix


def test_image_pull_backoff_says_the_kubelet_tried_a_registry() -> None:
    p = pod("web", [{"name": "web", "image": "todo-frontend:1"}],
            [waiting("web", "ImagePullBackOff", 'Back-off pulling image "todo-frontend:1"')])
    symptom = one(symptoms.container_symptoms(p, Target("kind")))
    assert "ImagePullBackOff" in symptom.evidence
    assert "tried to pull it from a registry" in symptom.fix


def test_crash_loop_reports_exit_code_and_last_log_lines() -> None:
    status = waiting("main", "CrashLoopBackOff", "back-off 20s restarting failed container",
                     restarts=3, lastState={"terminated": {"exitCode": 3, "reason": "Error"}})
    p = pod("crash", [{"name": "main", "image": "x"}], [status])
    symptom = one(symptoms.container_symptoms(p, logs={"crash/main": "starting\nboom\n"}))
    assert symptom.kind == "CrashLoopBackOff"
    assert "exits with code 3" in symptom.evidence and "restarted 3 times" in symptom.evidence
    assert "last log lines: starting | boom" in symptom.evidence
    assert "kubectl logs crash -c main --previous" in symptom.fix


def test_oomkilled_with_and_without_a_peak() -> None:
    status = {"name": "main", "ready": True, "restartCount": 2, "state": {"running": {}},
              "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    spec = {"name": "main", "image": "x", "resources": {"limits": {"memory": "32Mi"}}}
    p = pod("oom", [spec], [status])
    unknown = one(symptoms.container_symptoms(p))
    assert unknown.kind == "OOMKilled"
    assert "memory limit 32Mi, peak unknown: at least the limit" in unknown.evidence
    assert "e.g. 64Mi" in unknown.fix
    assert observe.peak_requests([p]) == [("oom", "main")]
    known = one(symptoms.container_symptoms(p, peaks={"oom/main": 33 * 2**20}))
    assert "peak 33Mi" in known.evidence


def test_oom_in_crash_loop_is_reported_once_as_oom() -> None:
    status = waiting("main", "CrashLoopBackOff", restarts=4,
                     lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    p = pod("oom", [{"name": "main", "image": "x"}], [status])
    assert [s.kind for s in symptoms.container_symptoms(p)] == ["OOMKilled"]


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
    symptom = one(symptoms.container_symptoms(p))
    assert symptom.kind == "missing config"
    assert message in symptom.evidence
    assert fix in symptom.fix


def unschedulable(name: str, message: str, requests: dict[str, str], **extra: Any) -> dict[str, Any]:
    return pod(name, [{"name": "main", "image": "x", "resources": {"requests": requests}}], [],
               phase="Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                             "reason": "Unschedulable", "message": message}],
               **extra)


NODE = {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}}


def test_pending_for_cpu_compares_the_pod_request_with_the_node() -> None:
    p = unschedulable("greedy", "0/1 nodes are available: 1 Insufficient cpu.", {"cpu": "500"})
    events = [event("Pod", "greedy", "FailedScheduling",
                    "0/1 nodes are available: 1 Insufficient cpu.", at=None,
                    eventTime="2025-01-01T00:00:01.000000Z")]
    symptom = symptoms.pending_symptom(p, events, [NODE], [], Target("minikube"))
    assert symptom is not None and symptom.kind == "Pending: insufficient cpu"
    assert "each pod requests 500 cpu, the largest node allocates 2" in symptom.evidence
    assert "each pod asks for more than a node has" in symptom.fix
    assert "MINIKUBE_CPUS" in symptom.fix and "minikube delete -p todo-chatbot" in symptom.fix


def test_pending_for_memory_uses_binary_units() -> None:
    p = unschedulable("big", "0/1 nodes are available: 1 Insufficient memory.", {"memory": "8Gi"})
    nodes = [{"metadata": {"name": "n"}, "status": {"allocatable": {"memory": "4019532Ki"}}}]
    symptom = symptoms.pending_symptom(p, [], nodes, [], Target("minikube"))
    assert symptom is not None
    assert "each pod requests 8Gi memory, the largest node allocates 3.8Gi" in symptom.evidence
    assert "MINIKUBE_MEMORY" in symptom.fix


def test_pending_on_an_unbound_claim_points_at_the_pvc() -> None:
    p = pod("db-0", [{"name": "db", "image": "x"}], [], phase="Pending",
            conditions=[{"type": "PodScheduled", "status": "False"}],
            spec={"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]})
    events = [event("Pod", "db-0", "FailedScheduling",
                    "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims.")]
    pvcs = [{"metadata": {"name": "data"}, "status": {"phase": "Pending"}}]
    symptom = symptoms.pending_symptom(p, events, [], pvcs)
    assert symptom is not None and symptom.kind == "Pending: unbound PVC"
    assert "PersistentVolumeClaim/data" in symptom.evidence


def test_failing_readiness_probe_names_endpoint_and_answer() -> None:
    spec = {"name": "web", "image": "x", "readinessProbe": {
        "httpGet": {"path": "/readyz", "port": 3000, "scheme": "HTTP"}}}
    p = pod("web-1", [spec], [running("web", ready=False)])
    events = [event("Pod", "web-1", "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                    obj={"fieldPath": "spec.containers{web}"}, count=7)]
    symptom = one(symptoms.probe_symptoms(p, events))
    assert symptom.kind == "Readiness probe failing"
    assert "readiness probe http GET :3000/readyz answered HTTP 503" in symptom.evidence
    assert "7 failures" in symptom.evidence
    assert ":3000/readyz" in symptom.fix
    assert symptom.subject == "/readyz"


def test_liveness_connection_refused_and_ready_containers_are_not_flagged() -> None:
    spec = {"name": "api", "image": "x",
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8000}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8000}}}
    p = pod("api-1", [spec], [running("api", restarts=2)])
    events = [
        event("Pod", "api-1", "Unhealthy", "Liveness probe failed: Get "
              '"http://10.244.0.9:8000/health": dial tcp 10.244.0.9:8000: connect: '
              "connection refused", obj={"fieldPath": "spec.containers{api}"}),
        event("Pod", "api-1", "Unhealthy", "Readiness probe failed: HTTP probe failed with "
              "statuscode: 500", obj={"fieldPath": "spec.containers{api}"}),
    ]
    symptom = one(symptoms.probe_symptoms(p, events))  # ready now: the readiness event is stale
    assert symptom.kind == "Liveness probe failing"
    assert "GET :8000/health answered: Get" in symptom.evidence
    assert "connection refused" in symptom.evidence


# --- object rules ----------------------------------------------------------------------------

STANDARD = {"metadata": {"name": "standard", "annotations": {
    "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "hostpath",
    "volumeBindingMode": "Immediate"}


def test_pvc_with_a_missing_storage_class() -> None:
    pvc = {"metadata": {"name": "nowhere"}, "spec": {"storageClassName": "fast"},
           "status": {"phase": "Pending"}}
    events = [event("PersistentVolumeClaim", "nowhere", "ProvisioningFailed",
                    'storageclass.storage.k8s.io "fast" not found')]
    [finding] = objects.pvc_findings([pvc], [STANDARD], events)
    assert finding.object == "PersistentVolumeClaim/nowhere"
    assert "StorageClass 'fast' does not exist (classes: standard (default))" in finding.evidence
    assert '"fast" not found' in finding.evidence
    assert "storageClassName" in finding.fix


@pytest.mark.parametrize("provider", PROVIDERS)
def test_pvc_without_class_and_no_default_class_hint_fits_the_provider(provider: str) -> None:
    pvc = {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}}
    plain = {"metadata": {"name": "slow"}, "provisioner": "x"}
    [finding] = objects.pvc_findings([pvc], [plain], [], Target(provider))
    assert "no default StorageClass" in finding.evidence
    assert ("minikube addons enable" in finding.fix) == (provider == "minikube")


def test_pending_pvc_that_waits_for_its_consumer_or_is_bound_is_fine() -> None:
    lazy = {"metadata": {"name": "lazy"}, "provisioner": "x",
            "volumeBindingMode": "WaitForFirstConsumer"}
    pvcs = [
        {"metadata": {"name": "a"}, "spec": {"storageClassName": "lazy"},
         "status": {"phase": "Pending"}},
        {"metadata": {"name": "b"}, "spec": {"storageClassName": "standard"},
         "status": {"phase": "Bound"}},
    ]
    assert objects.pvc_findings(pvcs, [STANDARD, lazy], []) == []


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
    findings = {f.object: f for f in objects.service_findings(services, endpoints, pods)}
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
                  labels={"job-name": "todo-chatbot-migrate-abc12345"},
                  owner=("Job", "todo-chatbot-migrate-abc12345"))
    assert [c[0] for c in observe.log_candidates([job_pod])] == [
        ("todo-chatbot-migrate-abc12345-x7k", "migrate", False)]
    logs = {"todo-chatbot-migrate-abc12345-x7k/migrate": "connecting\nFATAL: password authentication failed"}
    [finding] = objects.job_findings([job], [job_pod], logs)
    assert finding.object == "Job/todo-chatbot-migrate-abc12345"
    assert "BackoffLimitExceeded" in finding.evidence
    assert "migrate exited 1" in finding.evidence
    assert "FATAL: password authentication failed" in finding.evidence
    assert "DATABASE_URL" in finding.fix
    # the job's pod (restartPolicy Never) is not also reported as a crash loop
    assert symptoms.container_symptoms(job_pod) == []
    snapshot = Snapshot("todo", NOW, pods=[job_pod], jobs=[job], logs=logs)
    assert [f.object for f in doctor.diagnose(snapshot)] == ["Job/todo-chatbot-migrate-abc12345"]


def test_a_healthy_namespace_has_no_findings() -> None:
    spec = {"name": "api", "image": "x", "readinessProbe": {"httpGet": {"path": "/ready",
                                                                         "port": 8000}}}
    p = pod("api-1", [spec], [running("api")], labels={"app": "api"},
            conditions=[{"type": "Ready", "status": "True"}])
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


# --- a release on the observe, as the engine sees it ----------------------------------------

RELEASE = "todo-chatbot"


def workload(kind: str, component: str, replicas: int, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": component}
    name = f"{RELEASE}-{'postgres' if component == 'database' else component}"
    return {
        "kind": kind,
        "metadata": {"name": name, "labels": labels, "uid": f"uid-{name}",
                     "creationTimestamp": "2025-01-01T00:00:00Z",
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": replicas, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{
                "name": component, "image": extra.pop("image", f"todo-{component}:abc"),
                "resources": {"requests": {"cpu": extra.pop("cpu", "100m")}},
                "readinessProbe": {"httpGet": {"path": "/ready" if component == "backend"
                                               else "/readyz", "port": 8000}}}]}}},
    }


def replicaset(dep: dict[str, Any]) -> dict[str, Any]:
    name = dep["metadata"]["name"]
    return {"metadata": {"name": f"{name}-5d9", "uid": f"uid-{name}-rs",
                         "creationTimestamp": "2025-01-01T00:00:00Z",
                         "annotations": {"deployment.kubernetes.io/revision": "1"},
                         "ownerReferences": [{"kind": "Deployment", "name": name,
                                              "controller": True}]}}


def pod_of(owner: dict[str, Any], index: int, statuses: list[dict[str, Any]], **extra: Any
           ) -> dict[str, Any]:
    name = owner["metadata"]["name"]
    kind = owner.get("kind", "Deployment")
    rs = f"{name}-5d9"
    pod_name = f"{name}-{index}" if kind == "StatefulSet" else f"{rs}-p{index:02d}"
    template = owner["spec"]["template"]
    return pod(pod_name, template["spec"]["containers"], statuses,
               labels=template["metadata"]["labels"],
               owner=(kind, name) if kind == "StatefulSet" else ("ReplicaSet", rs), **extra)


def service(component: str) -> dict[str, Any]:
    name = f"{RELEASE}-{'postgres' if component == 'database' else component}"
    return {"metadata": {"name": name, "uid": f"uid-svc-{name}"},
            "spec": {"selector": {"app.kubernetes.io/instance": RELEASE,
                                  "app.kubernetes.io/component": component}}}


def test_a_database_scaled_to_zero_is_named_first_and_explains_the_rest() -> None:
    db = workload("StatefulSet", "database", 0)
    backend = workload("Deployment", "backend", 2)
    frontend = workload("Deployment", "frontend", 1)
    not_ready = [{"type": "Ready", "status": "False"}]
    backend_pods = [pod_of(backend, i, [running("backend", ready=False)], conditions=not_ready)
                    for i in range(2)]
    frontend_pod = pod_of(frontend, 0, [running("frontend")],
                          conditions=[{"type": "Ready", "status": "True"}])
    events = [
        event("Pod", name, "Unhealthy",
              "Readiness probe failed: HTTP probe failed with statuscode: 503",
              obj={"fieldPath": "spec.containers{backend}"}, count=12)
        for name in (p["metadata"]["name"] for p in backend_pods)
    ]
    snapshot = Snapshot(
        "todo", NOW, pods=[*backend_pods, frontend_pod], events=events,
        services=[service("database"), service("backend"), service("frontend")],
        endpoints=[{"metadata": {"name": f"{RELEASE}-frontend"},
                    "subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]}],
        deployments=[backend, frontend], statefulsets=[db],
        replicasets=[replicaset(backend), replicaset(frontend)],
    )
    findings = doctor.diagnose(snapshot, Target("existing"))
    assert len(findings) == 1, [f.to_dict() for f in findings]
    [cause] = findings
    assert cause.kind == "scaled to 0"
    assert cause.object == f"StatefulSet/{RELEASE}-postgres"
    assert cause.headline == (f"StatefulSet {RELEASE}-postgres has 0 replicas; the backend's "
                              "/ready fails because the database is down")
    assert cause.evidence == cause.headline + "; this causes: " + "; ".join(cause.consequences)
    folded = " | ".join(cause.consequences)
    assert f"2 of 2 pods of Deployment {RELEASE}-backend: not ready" in folded
    assert "readiness probe http GET :8000/ready answered HTTP 503" in folded
    assert f"Service/{RELEASE}-postgres has no ready endpoint" in folded
    assert f"Service/{RELEASE}-backend has no ready endpoint" in folded
    assert "inv deploy" in cause.fix and "--replicas=1" in cause.fix
    assert cause.observed_at == NOW
    assert cause.to_dict()["observed_at"] == NOW
    assert cause.check().evidence == cause.evidence


def test_what_the_pods_of_a_workload_scaled_to_zero_still_show_is_folded_under_it() -> None:
    """The database scaled to 0, its pod not yet marked for deletion (the controller lags on a
    busy node), a restart and a failed liveness probe in its past: whatever that pod shows is
    the scale-down's consequence, not a finding of its own (the cluster tier saw two findings
    for the StatefulSet)."""
    db = workload("StatefulSet", "database", 0)
    going = pod_of(db, 0, [running("postgres", ready=False, restarts=1)],
                   conditions=[{"type": "Ready", "status": "False"}])
    events = [event("Pod", going["metadata"]["name"], "Unhealthy", message,
                    obj={"fieldPath": "spec.containers{postgres}"}, count=3)
              for message in ("Liveness probe failed: dial tcp 10.0.0.5:5432: connect: connection refused",
                              "Readiness probe failed: connection refused")]
    snapshot = Snapshot("todo", NOW, pods=[going], events=events, services=[service("database")],
                        endpoints=[], deployments=[], statefulsets=[db], replicasets=[])
    findings = doctor.diagnose(snapshot, Target("existing"))
    assert [f.kind for f in findings] == ["scaled to 0"], [f.to_dict() for f in findings]
    assert f"Service/{RELEASE}-postgres has no ready endpoint" in findings[0].consequences


def test_twenty_pending_replicas_are_one_line_with_a_count_and_a_hint_for_the_provider() -> None:
    backend = workload("Deployment", "backend", 20, cpu="100m")
    message = "0/1 nodes are available: 1 Insufficient cpu."
    placed = [pod_of(backend, i, [running("backend")], spec={"nodeName": "n"},
                     conditions=[{"type": "Ready", "status": "True"}]) for i in range(17)]
    pending = [pod_of(backend, 17 + i, [], phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}])
        for i in range(3)]
    for p in pending:
        p["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    snapshot = Snapshot(
        "todo", NOW, pods=placed + pending, nodes=[NODE],
        requested={"n": {"cpu": Decimal("1.95")}},
        deployments=[backend], replicasets=[replicaset(backend)],
    )
    results = {}
    for provider in PROVIDERS:
        findings = doctor.diagnose(snapshot, Target(provider))
        assert len(findings) == 1, [f.to_dict() for f in findings]
        results[provider] = findings[0]
    finding = results["existing"]
    assert finding.kind == "Pending: insufficient cpu"
    assert finding.object == f"Deployment/{RELEASE}-backend"
    assert finding.evidence.startswith(
        f"3 of 20 pods of Deployment {RELEASE}-backend: Pending, Insufficient cpu: each pod "
        "requests 100m cpu, the largest node allocates 2 of which 50m is free")
    assert "run fewer replicas: BACKEND_REPLICAS (now 20; about 17 fit" in finding.fix
    assert "add a node with more cpu to the cluster" in finding.fix
    assert "MINIKUBE_CPUS" in results["minikube"].fix
    assert "Docker Desktop: Settings → Resources" in results["kind"].fix
    assert "give Docker Desktop more cpu" in results["docker-desktop"].fix
    for provider, f in results.items():
        if provider != "minikube":
            assert "MINIKUBE" not in f.fix and "minikube" not in f.fix, (provider, f.fix)


def test_crash_looping_replicas_share_one_finding_with_one_pods_logs() -> None:
    backend = workload("Deployment", "backend", 3)
    crash = [pod_of(backend, i, [waiting("backend", "CrashLoopBackOff", restarts=i + 2,
                                         lastState={"terminated": {"exitCode": 1}})])
             for i in range(3)]
    logs = {f"{crash[2]['metadata']['name']}/backend": "Traceback\nKeyError: 'DATABASE_URL'"}
    index = model.Index.of(Snapshot("todo", deployments=[backend], pods=crash,
                                     replicasets=[replicaset(backend)]))
    assert [c[0] for c in observe.log_candidates(crash, index)] == [
        (crash[2]["metadata"]["name"], "backend", True)]
    snapshot = Snapshot("todo", NOW, pods=crash, deployments=[backend],
                        replicasets=[replicaset(backend)], logs=logs)
    [finding] = doctor.diagnose(snapshot)
    assert finding.kind == "CrashLoopBackOff"
    assert finding.evidence.startswith(f"3 of 3 pods of Deployment {RELEASE}-backend: "
                                       "CrashLoopBackOff: container backend exits with code 1")
    assert "KeyError: 'DATABASE_URL'" in finding.evidence
    assert f"e.g. pod {crash[2]['metadata']['name']}" in finding.evidence


def test_an_unreadable_crash_log_is_read_from_the_next_instance_or_pod() -> None:
    # The CI run that refused stop 25: a failed upgrade's diagnosis read one pod's previous
    # log, got none, and showed "no log output" while the other crashed pod had it.
    backend = workload("Deployment", "backend", 2)
    crash = [pod_of(backend, i, [waiting("backend", "CrashLoopBackOff", restarts=3 - i,
                                         lastState={"terminated": {"exitCode": 1}})])
             for i in range(2)]
    first, second = (p["metadata"]["name"] for p in crash)
    index = model.Index.of(Snapshot("todo", deployments=[backend], pods=crash,
                                     replicasets=[replicaset(backend)]))
    [candidates] = observe.log_candidates(crash, index)
    assert candidates == [(first, "backend", True), (first, "backend", False),
                          (second, "backend", True), (second, "backend", False)]

    class Kubelet:
        def __init__(self, answers: dict[tuple[str, bool], str]) -> None:
            self.answers, self.asked = answers, []

        def pod_logs(self, namespace: str, pod: str, container: str, tail: int = 20,
                     previous: bool = False) -> str:
            self.asked.append((pod, previous))
            return self.answers.get((pod, previous), "")

    gone = "(no logs: HTTP 400: previous terminated container backend not found)"
    kubelet = Kubelet({(first, True): gone, (second, True): "broken on purpose\n"})
    logs = observe.first_log(kubelet, "todo", candidates)  # type: ignore[arg-type]
    assert logs == {f"{second}/backend": "broken on purpose\n"}
    assert kubelet.asked == [(first, True), (first, False), (second, True)]
    snapshot = Snapshot("todo", NOW, pods=crash, deployments=[backend],
                        replicasets=[replicaset(backend)], logs=logs)
    [finding] = doctor.diagnose(snapshot)
    assert "broken on purpose" in finding.evidence and f"e.g. pod {second}" in finding.evidence
    # None readable: the diagnosis says why, not "no log output".
    logs = observe.first_log(Kubelet({(first, True): gone}), "todo", candidates)  # type: ignore[arg-type]
    assert logs == {f"{first}/backend": gone}
    [finding] = doctor.diagnose(Snapshot("todo", NOW, pods=crash, deployments=[backend],
                                         replicasets=[replicaset(backend)], logs=logs))
    assert "its log could not be read (no logs: HTTP 400" in finding.evidence


def test_a_missing_secret_key_is_the_cause_and_the_service_follows() -> None:
    backend = workload("Deployment", "backend", 2)
    message = f"couldn't find key AUTH_SECRET in Secret todo/{RELEASE}-backend"
    pods = [pod_of(backend, i, [waiting("backend", "CreateContainerConfigError", message)])
            for i in range(2)]
    snapshot = Snapshot("todo", NOW, pods=pods, services=[service("backend")],
                        deployments=[backend], replicasets=[replicaset(backend)])
    [finding] = doctor.diagnose(snapshot)
    assert finding.kind == "missing config"
    assert f"2 of 2 pods of Deployment {RELEASE}-backend" in finding.evidence
    assert message in finding.evidence
    assert f"add key AUTH_SECRET to Secret/{RELEASE}-backend" in finding.fix
    assert finding.consequences == (f"Service/{RELEASE}-backend has no ready endpoint",)


IMAGES = {
    "backend": ImageRef("backend", "todo-backend", "it-1111", "sha256:" + "1" * 64),
    "frontend": ImageRef("frontend", "todo-frontend", "it-2222", "sha256:" + "2" * 64),
}


def test_an_image_set_by_hand_differs_from_the_recorded_build() -> None:
    backend = workload("Deployment", "backend", 1, image="todo-backend:by-hand")
    frontend = workload("Deployment", "frontend", 1, image="docker.io/library/todo-frontend:it-2222")
    pods = [
        pod_of(backend, 0, [running("backend", imageID="docker://sha256:" + "9" * 64)],
               conditions=[{"type": "Ready", "status": "True"}]),
        pod_of(frontend, 0, [running("frontend", imageID="docker://sha256:" + "2" * 64)],
               conditions=[{"type": "Ready", "status": "True"}]),
    ]
    snapshot = Snapshot("todo", NOW, pods=pods, deployments=[backend, frontend],
                        replicasets=[replicaset(backend), replicaset(frontend)])
    [finding] = doctor.diagnose(snapshot, Target("existing"), IMAGES)
    assert finding.kind == "image differs from the build"
    assert finding.object == f"Deployment/{RELEASE}-backend"
    assert ("container backend of Deployment todo-chatbot-backend is set to todo-backend:by-hand, "
            "but `inv build` recorded todo-backend:it-1111 (sha256:111111111111)") in finding.evidence
    assert "1 of 1 pods run todo-backend:by-hand" in finding.evidence
    assert "`inv deploy` puts the recorded image back" in finding.fix
    assert doctor.diagnose(snapshot, Target("existing")) == []  # nothing recorded: no verdict


def test_another_image_behind_the_recorded_tag_is_found_by_its_id() -> None:
    backend = workload("Deployment", "backend", 2, image="todo-backend:it-1111")
    ok = pod_of(backend, 0, [running("backend", imageID="docker://sha256:" + "1" * 64)])
    other = pod_of(backend, 1, [running("backend", imageID="docker://sha256:" + "7" * 64)])
    pulled = pod_of(backend, 2, [running("backend", imageID="docker-pullable://r/x@sha256:" + "8" * 64)])
    snapshot = Snapshot("todo", NOW, pods=[ok, other, pulled], deployments=[backend],
                        replicasets=[replicaset(backend)])
    for provider, step in (("minikube", "minikube image load"), ("kind", "kind load docker-image"),
                           ("existing", "shares the Docker daemon")):
        [finding] = doctor.diagnose(snapshot, Target(provider), IMAGES)
        assert ("1 of 3 pods of Deployment todo-chatbot-backend run todo-backend:it-1111 as "
                "image sha256:777777777777 (e.g. pod todo-chatbot-backend-5d9-p01)"
                ) in finding.evidence
        assert "sha256:777777777777" in finding.evidence and "sha256:111111111111" in finding.evidence
        assert step in finding.fix


def test_stale_events_are_ignored() -> None:
    backend = workload("Deployment", "backend", 1)
    current = pod_of(backend, 0, [running("backend", ready=False)],
                     created="2025-01-01T00:05:00Z", uid="uid-new")
    name = current["metadata"]["name"]
    unhealthy = "Readiness probe failed: HTTP probe failed with statuscode: 503"
    events = [
        # about a pod that is gone
        event("Pod", "todo-chatbot-backend-5d9-gone", "Unhealthy", unhealthy),
        event("Pod", "todo-chatbot-backend-5d9-gone", "FailedScheduling", "0/1: Insufficient cpu"),
        # about a namesake that existed before this pod
        event("Pod", name, "Unhealthy", unhealthy, obj={"uid": "uid-old"}),
        # older than the pod
        event("Pod", name, "Unhealthy", unhealthy, at="2025-01-01T00:04:59Z"),
    ]
    snapshot = Snapshot("todo", NOW, pods=[current], events=events, deployments=[backend],
                        replicasets=[replicaset(backend)])
    assert model.fresh_events(snapshot) == []
    assert doctor.diagnose(snapshot) == []
    fresh = event("Pod", name, "Unhealthy", unhealthy, obj={"uid": "uid-new",
                  "fieldPath": "spec.containers{backend}"}, at="2025-01-01T00:05:30Z")
    snapshot.events.append(fresh)
    assert model.fresh_events(snapshot) == [fresh]
    [finding] = doctor.diagnose(snapshot)
    assert finding.kind == "Readiness probe failing"


def test_a_replicaset_that_cannot_create_pods() -> None:
    backend = workload("Deployment", "backend", 2)
    rs = replicaset(backend)
    message = ('pods "todo-chatbot-backend-5d9-x" is forbidden: error looking up service '
               'account todo/robot: serviceaccount "robot" not found')
    snapshot = Snapshot("todo", NOW, deployments=[backend], replicasets=[rs],
                        events=[event("ReplicaSet", rs["metadata"]["name"], "FailedCreate",
                                      message)])
    [finding] = doctor.diagnose(snapshot)
    assert finding.kind == "cannot create pods"
    assert f"Deployment {RELEASE}-backend has 0 of 2 pods: FailedCreate: " in finding.evidence
    assert "ServiceAccount" in finding.fix


def test_pods_waiting_for_an_unbound_claim_fold_under_the_claim() -> None:
    db = workload("StatefulSet", "database", 1)
    db_pod = pod_of(db, 0, [], phase="Pending",
                    conditions=[{"type": "PodScheduled", "status": "False"}],
                    spec={"volumes": [{"name": "data", "persistentVolumeClaim": {
                        "claimName": "data-todo-chatbot-postgres-0"}}]})
    pvc = {"metadata": {"name": "data-todo-chatbot-postgres-0"},
           "spec": {"storageClassName": "fast"}, "status": {"phase": "Pending"}}
    snapshot = Snapshot("todo", NOW, pods=[db_pod], pvcs=[pvc], storage_classes=[STANDARD],
                        statefulsets=[db], services=[service("database")], events=[
                            event("Pod", db_pod["metadata"]["name"], "FailedScheduling",
                                  "0/1 nodes are available: 1 pod has unbound immediate "
                                  "PersistentVolumeClaims.")])
    [finding] = doctor.diagnose(snapshot, Target("kind"))
    assert finding.object == "PersistentVolumeClaim/data-todo-chatbot-postgres-0"
    assert any("1 of 1 pods of StatefulSet todo-chatbot-postgres: Pending: waits for" in c
               for c in finding.consequences)
    assert "Service/todo-chatbot-postgres has no ready endpoint" in finding.consequences


def test_the_explanation_of_a_failed_rollout_is_the_doctors_findings_as_text() -> None:
    backend = workload("Deployment", "backend", 2)
    crash = [pod_of(backend, i, [waiting("backend", "CrashLoopBackOff", restarts=3,
                                         lastState={"terminated": {"exitCode": 1}})])
             for i in range(2)]
    snapshot = Snapshot("todo", NOW, pods=crash, deployments=[backend],
                        replicasets=[replicaset(backend)],
                        logs={f"{crash[0]['metadata']['name']}/backend": "broken on purpose"})

    class Settings:
        cluster_provider, image_registry, minikube_profile = "existing", "", "p"
        backend_replicas, frontend_replicas = 2, 1

    text = doctor.explain(None, Settings(), "todo",  # type: ignore[arg-type]
                          ["app.kubernetes.io/component=backend"],
                          collector=lambda kube, ns: snapshot)
    lines = text.splitlines()
    assert lines[0] == f"the doctor's diagnosis of namespace todo ({NOW}):"
    assert lines[1] == f"  Deployment/{RELEASE}-backend: 2 pod(s), 0 ready (2 Running)"
    assert lines[2] == f"1. CrashLoopBackOff: Deployment/{RELEASE}-backend"
    assert "2 of 2 pods" in lines[3] and "broken on purpose" in lines[3]
    assert lines[4].startswith("   fix: fix what the log of container backend shows")
    assert len(lines) == 5  # one finding for two pods, not a page per pod


def test_no_fix_hint_names_minikube_off_minikube() -> None:
    """Every rule's hint on one broken namespace, for each provider."""
    backend = workload("Deployment", "backend", 2, cpu="3")
    message = "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
    pending = pod_of(backend, 0, [], phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "message": message}])
    pending["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "3", "memory": "9Gi"}}
    pull = pod_of(backend, 1, [waiting("backend", "ErrImageNeverPull", "not present")])
    pvc = {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}}
    snapshot = Snapshot("todo", NOW, pods=[pending, pull], pvcs=[pvc], nodes=[NODE],
                        storage_classes=[{"metadata": {"name": "x"}}],
                        deployments=[backend], replicasets=[replicaset(backend)])
    for provider in PROVIDERS:
        findings = doctor.diagnose(snapshot, Target(provider))
        assert {f.kind for f in findings} == {"Pending: insufficient cpu, memory",
                                              "image not found", "unbound PVC"}
        hints = " ".join(f.fix for f in findings)
        assert bool(re.search("minikube|MINIKUBE", hints)) == (provider == "minikube"), hints


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("2", Decimal(2)), ("32Mi", Decimal(32 * 2**20)),
     ("1G", Decimal(10**9)), ("1e3", Decimal(1000)), ("", Decimal(0)), (None, Decimal(0))],
)
def test_the_one_quantity_parser(text: str | None, value: Decimal) -> None:
    assert quantity(text) == value


def test_the_quantity_parser_refuses_what_the_api_would() -> None:
    with pytest.raises(ValueError):
        quantity("bogus")


def test_a_started_containers_old_startup_failures_and_named_ports() -> None:
    spec = {"name": "api", "image": "x", "ports": [{"name": "http", "containerPort": 8000}],
            "startupProbe": {"httpGet": {"path": "/started", "port": "http"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}
    p = pod("api-1", [spec], [running("api", ready=False, started=True)])
    events = [
        event("Pod", "api-1", "Unhealthy", 'Startup probe failed: Get "http://10.0.0.1:8000/'
              'started": dial tcp 10.0.0.1:8000: connect: connection refused',
              obj={"fieldPath": "spec.containers{api}"}),
        event("Pod", "api-1", "Unhealthy", "Readiness probe failed: HTTP probe failed with "
              "statuscode: 503", obj={"fieldPath": "spec.containers{api}"}, count=1),
    ]
    symptom = one(symptoms.probe_symptoms(p, events))
    assert symptom.kind == "Readiness probe failing"
    assert "readiness probe http GET :8000/ready answered HTTP 503 (1 failure)" in symptom.evidence
    p["status"]["containerStatuses"][0]["started"] = False
    assert {s.kind for s in symptoms.probe_symptoms(p, events)} == {
        "Readiness probe failing", "Startup probe failing"}


def _failed_job_pod(job: str, suffix: str, created: str) -> dict[str, Any]:
    p = pod(f"{job}-{suffix}", [{"name": "migrate", "image": "x"}],
            [{"name": "migrate", "ready": False, "restartCount": 0,
              "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
            phase="Failed", restart="Never", labels={"job-name": job}, owner=("Job", job))
    p["metadata"]["creationTimestamp"] = created
    return p


def test_a_job_whose_attempts_are_used_up_is_failed_before_the_controller_says_so() -> None:
    """v1.20's Job controller counts the last failure (and sets Failed) only after its own
    back-off delay, which can outlast the deploy's deadline: the pods tell it first."""
    from todo_deploy.kube import attempts_used_up

    name = "todo-migrate-abc"
    job = {"metadata": {"name": name}, "spec": {"backoffLimit": 3},
           "status": {"failed": 3, "active": 1}}  # what the controller had written
    pods = [_failed_job_pod(name, s, f"2026-11-29T10:00:0{i}Z") for i, s in enumerate("abcd")]
    assert attempts_used_up(pods[:3], 3) == ""  # a retry is still due
    used_up = attempts_used_up(pods, 3)
    assert used_up.startswith("all 4 attempts failed (backoffLimit 3); last todo-migrate-abc-d:")
    assert "container migrate exited with code 1" in used_up
    [finding] = objects.job_findings([job], pods, {f"{name}-d/migrate": "No 'script_location' key found"})
    assert "4 failed pod(s), backoffLimit 3" in finding.evidence
    assert "last log lines: No 'script_location' key found" in finding.evidence
    assert objects.job_findings([job], pods[:3], {}) == []


def _restarted_pod(name: str, restarts: int, finished_at: str | None, waiting: str = "") -> dict[str, Any]:
    last = {"terminated": {"exitCode": 255, "reason": "Error", "finishedAt": finished_at}} if finished_at else {}
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"name": name}, "status": {"containerStatuses": [
        {"name": "c", "restartCount": restarts, "lastState": last, "state": state}]}}


def test_a_restart_before_the_stage_is_shown_not_counted() -> None:
    """A node or laptop reboot restarts every container (a StatefulSet's pod keeps its count):
    the gates count only restarts since the deployment, and any crash loop."""
    from datetime import UTC, datetime

    from todo_deploy.kube import restarted_containers

    since = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)
    pods = [
        _restarted_pod("rebooted", 4, "2026-11-29T18:42:58Z"),
        _restarted_pod("crashed-now", 1, "2026-11-29T19:00:30Z"),
        _restarted_pod("skewed", 1, "2026-11-29T18:59:57Z"),  # within the 5 s allowed for clock skew
        _restarted_pod("looping", 6, "2026-11-29T18:00:00Z", waiting="CrashLoopBackOff"),
        _restarted_pod("never", 0, None),
    ]
    counted, earlier = restarted_containers(pods, since)
    assert [line.split("/")[0] for line in counted] == ["crashed-now", "skewed", "looping"]
    assert earlier == ["rebooted/c x4 (Error exit 255 at 2026-11-29T18:42:58Z)"]
    assert restarted_containers(pods, None)[0][0].startswith("rebooted/c x4")  # no time known: all count
