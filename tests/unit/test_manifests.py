"""The raw manifests as render.py renders them from Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from todo_deploy import render
from todo_deploy.artifacts import ImageRef
from todo_deploy.config import load_settings

IMAGES = {
    "backend": ImageRef("backend", "registry.local:5000/todo-backend", "a1b2c3d4e5f60718"),
    "frontend": ImageRef("frontend", "todo-frontend", "0f1e2d3c4b5a6978"),
}
LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
)


def settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings(tmp_path, environ=env).settings


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(o, o["spec"]["template"]["spec"]) for o in objects if "template" in o.get("spec", {})]


@pytest.fixture
def bundled(tmp_path: Path) -> list[dict[str, Any]]:
    return render.render_manifests(settings(tmp_path), IMAGES)


def test_every_object_has_the_app_labels_and_namespace(bundled: list[dict[str, Any]]) -> None:
    for obj in bundled:
        labels = obj["metadata"]["labels"]
        assert all(labels.get(k) for k in LABEL_KEYS), (obj["kind"], obj["metadata"]["name"])
        assert labels["app.kubernetes.io/managed-by"] == "todo-deploy"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "todo"
    assert not by_kind(bundled, "Secret")


def test_containers_have_resources_probes_and_restricted_context(bundled: list) -> None:
    long_running = 0
    for obj, pod in pod_specs(bundled):
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["enableServiceLinks"] is False
        assert pod["terminationGracePeriodSeconds"] > render.DRAIN_SECONDS
        assert pod["automountServiceAccountToken"] is False
        for container in pod.get("initContainers", []) + pod["containers"]:
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["imagePullPolicy"] == "IfNotPresent"
            for port in container.get("ports", []):
                assert port["protocol"] == "TCP"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in pod["containers"]:
                long_running += 1
                probes = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
                assert all(probes), container["name"]
                if obj["kind"] == "Deployment":
                    paths = {p["httpGet"]["path"] for p in probes}
                    assert len(paths) == 3, paths
    assert long_running == 3  # backend, frontend, postgres


def test_app_ids_and_probe_paths(bundled: list) -> None:
    deployments = {d["metadata"]["name"]: d for d in by_kind(bundled, "Deployment")}
    backend = deployments["todo-chatbot-backend"]["spec"]
    frontend = deployments["todo-chatbot-frontend"]["spec"]
    for spec in (backend, frontend):
        assert spec["template"]["spec"]["securityContext"]["runAsUser"] == 10001
        assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    b = backend["template"]["spec"]["containers"][0]
    assert (b["livenessProbe"]["httpGet"]["path"], b["readinessProbe"]["httpGet"]["path"],
            b["startupProbe"]["httpGet"]["path"]) == ("/health", "/ready", "/started")
    f = frontend["template"]["spec"]["containers"][0]
    assert (f["livenessProbe"]["httpGet"]["path"], f["readinessProbe"]["httpGet"]["path"],
            f["startupProbe"]["httpGet"]["path"]) == ("/healthz", "/readyz", "/")


def test_services_ports_are_tcp(bundled: list) -> None:
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(bundled, "Service")}
    assert services["todo-chatbot-backend"]["type"] == "ClusterIP"
    assert services["todo-chatbot-backend"]["ports"][0]["port"] == 8000
    assert services["todo-chatbot-frontend"]["type"] == "LoadBalancer"
    assert services["todo-chatbot-frontend"]["ports"][0]["port"] == 80
    assert services["todo-chatbot-postgres"]["ports"][0]["port"] == 5432
    for spec in services.values():
        assert all(p["protocol"] == "TCP" for p in spec["ports"])


def test_images_are_the_exact_built_refs(bundled: list) -> None:
    images = {
        c["image"]
        for _, pod in pod_specs(bundled)
        for c in pod.get("initContainers", []) + pod["containers"]
    }
    assert images == {IMAGES["backend"].ref, IMAGES["frontend"].ref, "postgres:15"}
    assert not any(i.endswith(":latest") or ":" not in i for i in images)
    job = by_kind(bundled, "Job")[0]
    assert job["metadata"]["name"] == "todo-chatbot-migrate-a1b2c3d4e5f6"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "-m", "todo_api", "migrate"]
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["activeDeadlineSeconds"] > 0


def test_settings_reach_the_objects(tmp_path: Path) -> None:
    s = settings(
        tmp_path, NAMESPACE="shop", RELEASE_NAME="demo", BACKEND_REPLICAS="3",
        FRONTEND_REPLICAS="1", FRONTEND_SERVICE_TYPE="NodePort",
        POSTGRES_IMAGE="localcluster/postgres:15", LLM_MODEL="llama3",
    )
    objects = render.render_manifests(s, IMAGES)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Namespace", "shop") in names
    assert ("Deployment", "demo-backend") in names and ("StatefulSet", "demo-postgres") in names
    assert not any("todo-chatbot-" in n for _, n in names)
    assert all(o["metadata"].get("namespace", "shop") == "shop" for o in objects)
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    assert deployments["demo-backend"]["spec"]["replicas"] == 3
    assert deployments["demo-frontend"]["spec"]["replicas"] == 1
    pod = deployments["demo-backend"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "demo-backend"
    assert pod["containers"][0]["envFrom"][1]["secretRef"]["name"] == "demo-backend"
    frontend_svc = [o for o in by_kind(objects, "Service") if o["metadata"]["name"] == "demo-frontend"]
    assert frontend_svc[0]["spec"]["type"] == "NodePort"
    config = by_kind(objects, "ConfigMap")[0]
    assert config["data"]["BACKEND_URL"] == "http://demo-backend:8000"
    assert config["data"]["LLM_MODEL"] == "llama3"
    assert not set(config["data"]) & {"DATABASE_URL", "AUTH_SECRET", "SESSION_SECRET", "OPENAI_API_KEY"}
    assert all(v not in str(config) for v in s.secret_values())
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    postgres = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    assert postgres["securityContext"]["runAsUser"] == 100  # the local image's postgres uid
    assert postgres["containers"][0]["image"] == "localcluster/postgres:15"
    policies = {p["metadata"]["name"]: p for p in by_kind(objects, "NetworkPolicy")}
    assert policies["demo-backend"]["spec"]["podSelector"]["matchLabels"][
        "app.kubernetes.io/instance"] == "demo"


def test_external_mode_has_no_postgres(tmp_path: Path) -> None:
    s = settings(tmp_path, DATABASE_MODE="external",
                 DATABASE_URL="postgresql://u:p@db.example.com:5432/todo")
    objects = render.render_manifests(s, IMAGES)
    assert not [o for o in objects if "postgres" in o["metadata"]["name"]]
    assert not [o for o in objects if o["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "database"]
    data = render.secret_data(s)
    assert set(data) == {"todo-chatbot-backend", "todo-chatbot-frontend"}
    assert data["todo-chatbot-backend"]["DATABASE_URL"] == "postgresql://u:p@db.example.com:5432/todo"


def test_secret_data_and_checksums_follow_settings(tmp_path: Path) -> None:
    s = settings(tmp_path, POSTGRES_PASSWORD="p@ss/word", AUTH_SECRET="a" * 40)
    data = render.secret_data(s)
    assert data["todo-chatbot-backend"]["DATABASE_URL"] == (
        "postgresql://todo:p%40ss%2Fword@todo-chatbot-postgres:5432/todo")
    assert data["todo-chatbot-postgres"] == {"POSTGRES_PASSWORD": "p@ss/word"}
    other = settings(tmp_path, POSTGRES_PASSWORD="p@ss/word", AUTH_SECRET="b" * 40)
    assert render.secrets_checksum(s) != render.secrets_checksum(other)

    def annotations(st) -> dict:  # type: ignore[no-untyped-def]
        dep = next(o for o in render.render_manifests(st, IMAGES) if o["kind"] == "Deployment")
        return dep["spec"]["template"]["metadata"]["annotations"]

    assert annotations(s)["checksum/secret"] == render.secrets_checksum(s)
    assert annotations(s)["checksum/secret"] != annotations(other)["checksum/secret"]
    changed = settings(tmp_path, POSTGRES_PASSWORD="p@ss/word", AUTH_SECRET="a" * 40, LLM_MODEL="x")
    assert annotations(s)["checksum/config"] != annotations(changed)["checksum/config"]
    manifests = render.secret_manifests(s)
    assert {m["metadata"]["name"] for m in manifests} == set(data)
    assert render.app_labels(s).items() <= manifests[0]["metadata"]["labels"].items()


def test_helm_values_carry_no_secret(tmp_path: Path) -> None:
    s = settings(tmp_path, OPENAI_API_KEY="sk-test-123456", POSTGRES_PASSWORD="pw-secret-987")
    values = render.helm_values(s, IMAGES)
    text = str(values)
    assert all(secret not in text for secret in s.secret_values())
    assert values["secrets"]["existingSecret"]["backend"] == "todo-chatbot-backend"
    assert values["secrets"]["secretChecksum"] == render.secrets_checksum(s)
    assert values["backend"]["image"] == {"repository": "registry.local:5000/todo-backend",
                                          "tag": "a1b2c3d4e5f60718"}


def test_kustomization_lists_every_file_and_the_images() -> None:
    import yaml

    kustomization = yaml.safe_load((render.K8S_DIR / "kustomization.yaml").read_text())
    files = {p.name for p in render.K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert {i["name"] for i in kustomization["images"]} == {"todo-backend", "todo-frontend"}
    namespace = yaml.safe_load((render.K8S_DIR / "namespace.yaml").read_text())
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "latest" not in (render.K8S_DIR / "backend.yaml").read_text()


def test_split_image() -> None:
    assert render.split_image("postgres:16") == ("postgres", "16")
    assert render.split_image("registry.local:5000/pg") == ("registry.local:5000/pg", "")
    assert render.split_image("pg@sha256:abc") == ("pg@sha256:abc", "")
