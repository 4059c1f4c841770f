"""The embedded Helm v4 engine against the test cluster: install the chart with
stand-in images (tiny servers FROM the local python base that answer the probe
paths and `python -m todo_api migrate`), `helm test`, `inv rollback` with one
revision, and an uninstall that leaves nothing of the release behind. (A failed
upgrade rolled back, with the history's descriptions: test_deploy_helm's, with the
embedded engine too when no `helm` is on PATH.) Namespace and release start with h3-
(this suite's share of the shared cluster)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_IMAGE, PYTHON_IMAGE
from todo_deploy import helm
from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import LoadedSettings, Settings, load_settings
from todo_deploy.stages import helm_deploy as helm_stage
from todo_deploy.tools.commands import Runner

pytestmark = pytest.mark.cluster

RELEASE = "h3-hit"

SERVER = '''\
import http.server, os, sys
PATHS = {"/health", "/ready", "/started", "/healthz", "/readyz", "/"}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path in PATHS else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
def main():
    if sys.argv[1:] == ["migrate"]:
        print("stand-in migrate: ok")
        return
    port = int(os.environ.get("PORT", "8000"))
    http.server.ThreadingHTTPServer(("", port), Handler).serve_forever()
'''
FILES = {
    "Dockerfile": f"FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY . /app\n"
    "ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1\nUSER 10001:10001\n"
    'CMD ["python", "-m", "todo_api"]\n',
    "standin.py": SERVER,
    "todo_api/__init__.py": "",
    "todo_api/__main__.py": "from standin import main\nmain()\n",
}


@pytest.fixture(scope="module")
def standin_image(docker_engine: None, kube_cluster: None) -> ImageRef:
    import docker

    tag = "standin-" + hashlib.sha256(repr(sorted(FILES.items())).encode()).hexdigest()[:12]
    client = docker.from_env()
    try:
        image = client.images.get(f"todo-standin:{tag}")
    except docker.errors.ImageNotFound:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, text in FILES.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        image, _ = client.images.build(fileobj=buffer, custom_context=True,
                                       tag=f"todo-standin:{tag}", rm=True)
    return ImageRef("backend", "todo-standin", tag, image.id)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[tuple[Settings, object]]:
    from kubernetes import client, config

    config.load_kube_config()
    core = client.CoreV1Api()
    namespace = f"h3-helm-it-{uuid.uuid4().hex[:6]}"
    settings = load_settings(tmp_path, environ={
        "NAMESPACE": namespace, "RELEASE_NAME": RELEASE, "POSTGRES_IMAGE": POSTGRES_IMAGE,
        "BACKEND_REPLICAS": "1", "FRONTEND_REPLICAS": "1", "FRONTEND_SERVICE_TYPE": "NodePort",
    }).settings
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        # What the deploy stage does first: the Secrets, from settings, never via values.
        for secret in chart_values.secret_manifests(settings):
            core.create_namespaced_secret(namespace, secret)
        yield settings, core
    finally:
        core.delete_namespace(namespace)


def _release_objects(core: object, namespace: str) -> list[str]:
    from kubernetes import client

    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/managed-by=Helm"
    apps, batch = client.AppsV1Api(), client.BatchV1Api()
    networking = client.NetworkingV1Api()
    listings = {
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "Job": batch.list_namespaced_job,
        "Service": core.list_namespaced_service,  # type: ignore[attr-defined]
        "ConfigMap": core.list_namespaced_config_map,  # type: ignore[attr-defined]
        "ServiceAccount": core.list_namespaced_service_account,  # type: ignore[attr-defined]
        "NetworkPolicy": networking.list_namespaced_network_policy,
        "Pod": core.list_namespaced_pod,  # type: ignore[attr-defined]
    }
    found = []
    for kind, listing in listings.items():
        for item in listing(namespace, label_selector=selector).items:
            if kind == "Pod" and item.metadata.deletion_timestamp:
                continue
            found.append(f"{kind}/{item.metadata.name}")
    return found


def test_embedded_engine_install_test_rollback_uninstall(
    standin_image: ImageRef, scratch: tuple[Settings, object], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, core = scratch
    namespace = settings.namespace
    images = {
        "backend": standin_image,
        "frontend": ImageRef("frontend", standin_image.repository, standin_image.tag),
    }
    with monkeypatch.context() as no_binaries:
        # A PATH with no helm on it, whatever the user's PATH holds.
        no_binaries.setenv("PATH", str(tmp_path / "empty-path"))
        engine = helm.engine(Runner(log=lambda _: None), "")
    assert engine.name == helm.SDK_NAME
    values = chart_values.helm_values(settings, images)
    # An emptyDir instead of a claim: the test cluster's 12 hostPath volumes are
    # Retain-ed, so every claim would use one up for good.
    values["database"]["persistence"] = {"enabled": False}

    started = time.monotonic()
    installed = engine.upgrade_install(RELEASE, chart_values.CHART_DIR, namespace, values, timeout_s=150)
    assert installed.ok, installed.message
    assert (installed.revision, installed.status) == (1, "deployed")
    assert time.monotonic() - started < 150

    from kubernetes import client

    apps = client.AppsV1Api()
    for name in (f"{RELEASE}-backend", f"{RELEASE}-frontend"):
        deployment = apps.read_namespaced_deployment(name, namespace)
        assert deployment.status.ready_replicas == 1, name  # --wait really waited
        image = deployment.spec.template.spec.containers[0].image
        assert image == standin_image.ref
    postgres = apps.read_namespaced_stateful_set(f"{RELEASE}-postgres", namespace)
    # restricted context, the official image's postgres uid, read-only root
    assert postgres.status.ready_replicas == 1
    assert postgres.spec.template.spec.security_context.run_as_user == 999
    assert not postgres.spec.volume_claim_templates
    job = client.BatchV1Api().read_namespaced_job(manifests.migration_job(manifests.render_manifests(settings, images)), namespace)
    assert job.status.succeeded == 1

    ok, output = engine.test(RELEASE, namespace, timeout_s=120)
    assert ok, output
    assert f"http://{RELEASE}-backend:8000/ready 200" in output
    assert f"http://{RELEASE}-frontend:80/ 200" in output

    # `inv rollback` with one revision: plain words, and Helm is not asked at all.
    loaded = LoadedSettings(settings, root=tmp_path)
    nothing = helm_stage.rollback(loaded, engine=engine)
    assert not nothing.ok
    assert nothing.message == (f"{RELEASE} has only revision 1: there is no earlier revision "
                               "to roll back to")
    assert [h["revision"] for h in engine.history(RELEASE, namespace)] == [1]

    engine.uninstall(RELEASE, namespace)
    assert engine.status(RELEASE, namespace) is None
    assert engine.history(RELEASE, namespace) == []
    deadline = time.monotonic() + 60
    while (left := _release_objects(core, namespace)) and time.monotonic() < deadline:
        time.sleep(2)
    assert left == []
    claims = core.list_namespaced_persistent_volume_claim(namespace).items  # type: ignore[attr-defined]
    assert claims == []
