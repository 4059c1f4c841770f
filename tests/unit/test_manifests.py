"""The raw path: the chart rendered in-process from Settings (todo_deploy.chart.manifests,
with chart_values.py's values and Secret data), and k8s/ generated from the chart."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import load_settings

IMAGES = {
    "backend": ImageRef("backend", "registry.local:5000/todo-backend", "a1b2c3d4e5f6"),
    "frontend": ImageRef("frontend", "todo-frontend", "0f1e2d3c4b5a"),
}
LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
)
SECRET_KEYS = {"DATABASE_URL", "AUTH_SECRET", "SESSION_SECRET", "PROXY_SECRET", "OPENAI_API_KEY",
               "POSTGRES_PASSWORD"}


def settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings(tmp_path, environ=env).settings


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(o, o["spec"]["template"]["spec"]) for o in objects if "template" in o.get("spec", {})]


def containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for _, pod in pod_specs(objects) for c in pod.get("initContainers", []) + pod["containers"]]


@pytest.fixture
def bundled(tmp_path: Path) -> list[dict[str, Any]]:
    return manifests.render_manifests(settings(tmp_path), IMAGES)


def test_every_object_has_the_app_labels_and_namespace(bundled: list[dict[str, Any]]) -> None:
    assert bundled[0]["kind"] == "Namespace" and bundled[0]["metadata"]["name"] == "todo"
    for obj in bundled:
        labels = obj["metadata"]["labels"]
        assert all(labels.get(k) for k in LABEL_KEYS), (obj["kind"], obj["metadata"]["name"])
        assert labels["app.kubernetes.io/managed-by"] == "todo-deploy"  # how prune finds them
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "todo"
    assert not by_kind(bundled, "Secret")
    namespace = bundled[0]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


def test_no_hooks_and_no_test_pods(bundled: list[dict[str, Any]]) -> None:
    assert not by_kind(bundled, "Pod")
    assert not [o for o in bundled if manifests.is_hook(o)]
    job = by_kind(bundled, "Job")[0]
    assert "annotations" not in job["metadata"]


def test_apply_order_puts_what_pods_need_first(bundled: list[dict[str, Any]]) -> None:
    kinds = [o["kind"] for o in bundled]
    assert kinds.index("ServiceAccount") < kinds.index("ConfigMap") < kinds.index("Service")
    assert kinds.index("Service") < kinds.index("Deployment") < kinds.index("StatefulSet")
    assert kinds.index("StatefulSet") < kinds.index("Job")


def test_containers_have_resources_probes_and_restricted_context(bundled: list) -> None:
    long_running = 0
    for obj, pod in pod_specs(bundled):
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["enableServiceLinks"] is False
        assert pod["terminationGracePeriodSeconds"] > chart_values.DRAIN_SECONDS
        assert pod["automountServiceAccountToken"] is False
        for container in pod.get("initContainers", []) + pod["containers"]:
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["imagePullPolicy"] == "IfNotPresent"
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
    backend = named(bundled, "Deployment", "todo-chatbot-backend")["spec"]
    frontend = named(bundled, "Deployment", "todo-chatbot-frontend")["spec"]
    for spec in (backend, frontend):
        assert spec["template"]["spec"]["securityContext"]["runAsUser"] == 10001
        # Old pods serve until the new set is ready; the whole new set starts at once.
        assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "100%"}
        container = spec["template"]["spec"]["containers"][0]
        # A new pod serves within a second of its app being ready; the start-up
        # budget (120 s) and the time a failing pod keeps serving (15 s) are kept.
        startup, ready = container["startupProbe"], container["readinessProbe"]
        assert (startup["periodSeconds"], startup["periodSeconds"] * startup["failureThreshold"]) == (1, 120)
        assert (ready["periodSeconds"], ready["periodSeconds"] * ready["failureThreshold"]) == (1, 15)
    b = backend["template"]["spec"]["containers"][0]
    assert (b["livenessProbe"]["httpGet"]["path"], b["readinessProbe"]["httpGet"]["path"],
            b["startupProbe"]["httpGet"]["path"]) == ("/health", "/ready", "/started")
    f = frontend["template"]["spec"]["containers"][0]
    assert (f["livenessProbe"]["httpGet"]["path"], f["readinessProbe"]["httpGet"]["path"],
            f["startupProbe"]["httpGet"]["path"]) == ("/healthz", "/readyz", "/")


def test_every_service_and_container_port_says_tcp(bundled: list) -> None:
    """Server-side apply on Kubernetes 1.20 rejects a port without `protocol`."""
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(bundled, "Service")}
    assert services["todo-chatbot-backend"]["type"] == "ClusterIP"
    assert services["todo-chatbot-backend"]["ports"][0]["port"] == 8000
    assert services["todo-chatbot-frontend"]["type"] == "LoadBalancer"
    assert services["todo-chatbot-frontend"]["ports"][0]["port"] == 80
    assert services["todo-chatbot-postgres"]["ports"][0]["port"] == 5432
    ports = [p for spec in services.values() for p in spec["ports"]]
    ports += [p for c in containers(bundled) for p in c.get("ports", [])]
    assert len(ports) == 6
    assert all(p.get("protocol") == "TCP" for p in ports), ports


def test_images_are_the_exact_built_refs(bundled: list) -> None:
    images = {c["image"] for c in containers(bundled)}
    assert images == {IMAGES["backend"].ref, IMAGES["frontend"].ref, "postgres:15"}
    assert not any(i.endswith(":latest") or ":" not in i.rsplit("/", 1)[-1] for i in images)
    job = by_kind(bundled, "Job")[0]
    assert job["metadata"]["name"] == "todo-chatbot-migrate-a1b2c3d4e5f6"  # all 12 tag characters
    assert manifests.migration_job(bundled) == job["metadata"]["name"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "-m", "todo_api", "migrate"]
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("image", ["postgres:15", "localcluster/postgres:15", "mirror.local/pg:16"])
def test_postgres_runs_as_the_official_images_uid(tmp_path: Path, image: str) -> None:
    """No table of per-image uids: the bundled database runs as 999 like the official image."""
    objects = manifests.render_manifests(settings(tmp_path, POSTGRES_IMAGE=image), IMAGES)
    sts = by_kind(objects, "StatefulSet")[0]["spec"]["template"]["spec"]
    assert sts["containers"][0]["image"] == image
    context = sts["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (999, 999, 999)
    assert not hasattr(chart_values, "postgres_uid") and not hasattr(chart_values, "POSTGRES_UIDS")


def test_settings_reach_the_objects(tmp_path: Path) -> None:
    s = settings(
        tmp_path, NAMESPACE="shop", RELEASE_NAME="demo", BACKEND_REPLICAS="3", DATABASE_MAX_CONNECTIONS="200",
        FRONTEND_REPLICAS="1", FRONTEND_SERVICE_TYPE="NodePort", LLM_MODEL="llama3",
    )
    objects = manifests.render_manifests(s, IMAGES)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Namespace", "shop") in names
    assert ("Deployment", "demo-backend") in names and ("StatefulSet", "demo-postgres") in names
    assert not any("todo-chatbot-" in n for _, n in names)
    assert all(o["metadata"].get("namespace", "shop") == "shop" for o in objects)
    assert named(objects, "Deployment", "demo-backend")["spec"]["replicas"] == 3
    assert named(objects, "Deployment", "demo-frontend")["spec"]["replicas"] == 1
    pod = named(objects, "Deployment", "demo-backend")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "demo-backend"
    assert pod["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "demo-config"}}, {"secretRef": {"name": "demo-backend"}}]
    assert named(objects, "Service", "demo-frontend")["spec"]["type"] == "NodePort"
    config = by_kind(objects, "ConfigMap")[0]
    assert config["data"]["BACKEND_URL"] == "http://demo-backend:8000"
    assert config["data"]["LLM_MODEL"] == "llama3"
    assert not set(config["data"]) & SECRET_KEYS
    assert all(v not in str(config) for v in s.secret_values())
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    policy = named(objects, "NetworkPolicy", "demo-backend")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "demo"


def test_external_mode_has_no_postgres(tmp_path: Path) -> None:
    s = settings(tmp_path, DATABASE_MODE="external",
                 DATABASE_URL="postgresql://u:p@db.example.com:6543/todo")
    objects = manifests.render_manifests(s, IMAGES)
    assert not [o for o in objects if "postgres" in o["metadata"]["name"]]
    assert not [o for o in objects if o["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "database"]
    job = by_kind(objects, "Job")[0]  # a plain Job in the raw path (Helm runs it as a hook)
    assert not manifests.is_hook(job)
    data = chart_values.secret_data(s)
    assert set(data) == {"todo-chatbot-backend", "todo-chatbot-frontend"}
    assert data["todo-chatbot-backend"]["DATABASE_URL"] == "postgresql://u:p@db.example.com:6543/todo"
    # The backend and the migration may reach the external database's port.
    for name in ("todo-chatbot-backend", "todo-chatbot-migration"):
        egress = named(objects, "NetworkPolicy", name)["spec"]["egress"]
        assert {"ports": [{"port": 6543, "protocol": "TCP"}]} in egress, name


def test_secret_data_and_checksums_follow_settings(tmp_path: Path) -> None:
    s = settings(tmp_path, POSTGRES_PASSWORD="p@ss/word", AUTH_SECRET="a" * 40)
    data = chart_values.secret_data(s)
    assert data["todo-chatbot-backend"]["DATABASE_URL"] == (
        "postgresql://todo:p%40ss%2Fword@todo-chatbot-postgres:5432/todo")
    assert data["todo-chatbot-postgres"] == {"POSTGRES_PASSWORD": "p@ss/word"}
    # PROXY_SECRET: one value, in both apps' Secrets (the frontend sends it, the backend checks it).
    proxy = s.proxy_secret.get_secret_value()
    assert len(proxy) >= 16
    assert data["todo-chatbot-backend"]["PROXY_SECRET"] == data["todo-chatbot-frontend"]["PROXY_SECRET"] == proxy
    other = settings(tmp_path, POSTGRES_PASSWORD="p@ss/word", AUTH_SECRET="b" * 40)
    assert chart_values.secrets_checksum(s) != chart_values.secrets_checksum(other)

    def annotations(st) -> dict:  # type: ignore[no-untyped-def]
        dep = by_kind(manifests.render_manifests(st, IMAGES), "Deployment")[0]
        return dep["spec"]["template"]["metadata"]["annotations"]

    assert annotations(s)["checksum/secret"] == chart_values.secrets_checksum(s)
    assert annotations(s)["checksum/secret"] != annotations(other)["checksum/secret"]
    changed = settings(tmp_path, POSTGRES_PASSWORD="p@ss/word", AUTH_SECRET="a" * 40, LLM_MODEL="x")
    assert annotations(s)["checksum/config"] != annotations(changed)["checksum/config"]
    secrets = chart_values.secret_manifests(s)
    assert {m["metadata"]["name"] for m in secrets} == set(data)
    assert chart_values.app_labels(s).items() <= secrets[0]["metadata"]["labels"].items()
    assert all(m["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "todo-deploy"
               for m in secrets)


def test_credentials_in_the_llm_url_go_to_the_secret_not_the_configmap(tmp_path: Path) -> None:
    url = "https://user:hunter2-secret@llm.example.com:8443/v1"
    s = settings(tmp_path, OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-test-123456")
    objects = manifests.render_manifests(s, IMAGES)
    config = by_kind(objects, "ConfigMap")[0]["data"]
    assert config["OPENAI_BASE_URL"] == "https://llm.example.com:8443/v1"
    assert "hunter2" not in yaml.safe_dump(objects)
    assert chart_values.secret_data(s)["todo-chatbot-backend"]["OPENAI_BASE_URL"] == url
    # ...and the backend Secret comes after the ConfigMap, so its value wins.
    env_from = named(objects, "Deployment", "todo-chatbot-backend")["spec"]["template"]["spec"][
        "containers"][0]["envFrom"]
    assert list(env_from[-1]) == ["secretRef"]
    plain = settings(tmp_path, OPENAI_BASE_URL="https://llm.example.com/v1")
    assert "OPENAI_BASE_URL" not in chart_values.secret_data(plain)["todo-chatbot-backend"]


def test_helm_values_carry_no_secret(tmp_path: Path) -> None:
    s = settings(tmp_path, OPENAI_API_KEY="sk-test-123456", POSTGRES_PASSWORD="pw-secret-987")
    values = chart_values.helm_values(s, IMAGES)
    text = str(values)
    assert all(secret not in text for secret in s.secret_values())
    assert values["secrets"]["existingSecret"]["backend"] == "todo-chatbot-backend"
    assert values["secrets"]["secretChecksum"] == chart_values.secrets_checksum(s)
    assert values["backend"]["image"] == {"repository": "registry.local:5000/todo-backend",
                                          "tag": "a1b2c3d4e5f6"}
    raw = chart_values.raw_values(s, IMAGES)
    assert {k: v for k, v in raw.items() if k not in ("namespace", "managedBy", "migration")} == {
        k: v for k, v in values.items() if k != "migration"}


def test_split_image() -> None:
    assert chart_values.split_image("postgres:16") == ("postgres", "16")
    assert chart_values.split_image("registry.local:5000/pg") == ("registry.local:5000/pg", "")
    assert chart_values.split_image("pg@sha256:abc") == ("pg@sha256:abc", "")


# ---- k8s/, generated from the chart ----------------------------------------------------------


def test_k8s_matches_the_chart() -> None:
    """The committed plain manifests are exactly the chart's defaults, rendered:
    run `inv manifests` after changing the chart."""
    assert manifests.drift() == []


def test_drift_is_noticed_and_repaired(tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(manifests.K8S_DIR, k8s)
    backend = k8s / "backend.yaml"
    backend.write_text(backend.read_text().replace("replicas: 2", "replicas: 5", 1))
    (k8s / "configmap.yaml").unlink()
    (k8s / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert manifests.drift(k8s) == [
        "k8s/configmap.yaml: missing",
        "k8s/backend.yaml: differs from the chart",
        "k8s/extra.yaml: not rendered by the chart",
    ]
    assert manifests.main(["--check", "--dir", str(k8s)]) == 1
    changed = manifests.write(k8s)
    assert changed == ["removed extra.yaml", "wrote configmap.yaml", "wrote backend.yaml"]
    assert manifests.drift(k8s) == []
    assert manifests.main(["--check", "--dir", str(k8s)]) == 0


def _without_deploy_specifics(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects with the app's image tags and the secret checksum blanked out."""
    out = copy.deepcopy(objects)
    for obj in out:
        template = obj.get("spec", {}).get("template")
        if not template:
            continue
        template["metadata"].get("annotations", {}).pop("checksum/secret", None)
        for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            repository, _ = chart_values.split_image(container["image"])
            if repository.startswith("todo-"):
                container["image"] = repository
    return out


def test_k8s_is_what_inv_deploy_applies_with_default_settings(tmp_path: Path) -> None:
    """Chart defaults and Settings defaults agree: k8s/ differs from `inv deploy`'s
    objects only in the image tags (placeholders) and the Secrets' checksum."""
    images = {c: ImageRef(c, f"todo-{c}", "abcdef123456") for c in ("backend", "frontend")}
    deployed = manifests.render_manifests(settings(tmp_path), images)
    committed = manifests.load_dir(manifests.K8S_DIR)
    assert len(by_kind(committed, "Job")) == len(by_kind(deployed, "Job")) == 1  # named after the tag
    committed, deployed = ([o for o in objs if o["kind"] != "Job"] for objs in (committed, deployed))
    key = lambda o: (o["kind"], o["metadata"]["name"])
    assert sorted(map(key, committed)) == sorted(map(key, deployed))
    assert sorted(_without_deploy_specifics(committed), key=key) == sorted(
        _without_deploy_specifics(deployed), key=key)


def test_kustomization_lists_every_file_and_documents_the_placeholders() -> None:
    text = (manifests.K8S_DIR / "kustomization.yaml").read_text()
    kustomization = yaml.safe_load(text)
    files = {p.name for p in manifests.K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    objects = manifests.load_dir(manifests.K8S_DIR)
    images = {c["image"] for c in containers(objects)}
    placeholders = {f"{i['name']}:{i['newTag']}" for i in kustomization["images"]}
    assert placeholders == {i for i in images if i.startswith("todo-")}
    assert {i["name"] for i in kustomization["images"]} == {"todo-backend", "todo-frontend"}
    for word in ("placeholder", "inv build", "newTag", "kubectl apply -k", "create secret"):
        assert word in text, word
    everything = "".join(p.read_text() for p in manifests.K8S_DIR.glob("*.yaml"))
    assert ":0.1.0" not in everything and ":latest" not in everything
    assert not by_kind(objects, "Secret") and not [o for o in objects if manifests.is_hook(o)]
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "todo"


def test_kubectl_kustomize_accepts_k8s() -> None:
    """`kubectl apply -k k8s/` builds with kubectl's own kustomize and sets the images."""
    import subprocess

    from tests.conftest import require

    require(shutil.which("kubectl") is not None, "kubectl")
    built = subprocess.run(["kubectl", "kustomize", str(manifests.K8S_DIR)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    assert len(objects) == len(manifests.load_dir(manifests.K8S_DIR))
    assert by_kind(objects, "Namespace")[0]["metadata"]["name"] == "todo"


def test_generate_leaves_out_hooks_and_secrets_even_when_the_chart_has_them(
    tmp_path: Path,
) -> None:
    """A hook in a regular template (here: the migration Job made a hook) stays out of k8s/."""
    chart = tmp_path / "chart"
    shutil.copytree(chart_values.CHART_DIR, chart)
    job = chart / "templates" / "migration-job.yaml"
    job.write_text(job.read_text().replace("{{- if .Values.migration.hook }}", "{{- if true }}"))
    files = manifests.generate(chart)
    assert "migration-job.yaml" not in files and "secrets.yaml" not in files
    assert not any(name.startswith("test-") for name in files)
    assert "migration-job.yaml" not in yaml.safe_load(files["kustomization.yaml"])["resources"]


def test_the_generated_objects_hold_no_secret_material() -> None:
    for path in manifests.K8S_DIR.glob("*.yaml"):
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj or obj.get("kind") != "ConfigMap":
                continue
            assert not set(obj["data"]) & SECRET_KEYS
            for value in obj["data"].values():
                assert "@" not in value  # no credentials in a URL


def test_a_live_nodeport_is_kept_when_the_service_is_made_again() -> None:
    from todo_deploy.chart import values as chart_values
    from todo_deploy.config import Settings

    nodeport = Settings(frontend_service_type="NodePort")  # type: ignore[arg-type]
    images = chart_values.default_images()
    kept = manifests.render_manifests(nodeport, images, node_port=31234)
    [service] = [o for o in kept if o["kind"] == "Service" and o["metadata"]["name"].endswith("-frontend")]
    assert service["spec"]["ports"][0]["nodePort"] == 31234
    assert chart_values.helm_values(nodeport, images, 31234)["frontend"]["service"]["nodePort"] == 31234
    fresh = manifests.render_manifests(nodeport, images)
    [service] = [o for o in fresh if o["kind"] == "Service" and o["metadata"]["name"].endswith("-frontend")]
    assert "nodePort" not in service["spec"]["ports"][0]  # the first deploy: Kubernetes picks
    cluster_ip = Settings(frontend_service_type="ClusterIP")  # type: ignore[arg-type]
    assert "nodePort" not in chart_values.helm_values(cluster_ip, images, 31234)["frontend"]["service"]


def test_the_committed_manifests_are_read_by_the_shared_loader_into_the_pure_python_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load_dir parses with the module's loader (libyaml's where PyYAML has it: most of the
    time went to the pure-Python parser) and gets what the pure-Python safe loader gets."""
    used: list[str] = []

    class Recording(manifests.YAML_LOADER):  # type: ignore[name-defined,misc]
        def __init__(self, stream: str) -> None:
            used.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(manifests, "YAML_LOADER", Recording)
    objects = manifests.load_dir(manifests.K8S_DIR)
    kustomization = yaml.safe_load((manifests.K8S_DIR / "kustomization.yaml").read_text())
    assert len(used) >= len(kustomization["resources"])
    pure = [obj for resource in kustomization["resources"]
            for obj in yaml.safe_load_all((manifests.K8S_DIR / resource).read_text()) if isinstance(obj, dict)]
    assert objects == pure and len(objects) > 10
