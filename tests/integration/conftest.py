"""Shared cluster fixtures: built images (once per session), scratch namespaces
with their own release names and settings roots, and cleanup."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import POSTGRES_IMAGE, PYTHON_IMAGE
from todo_deploy.artifacts import ImageRef, save_images
from todo_deploy.components import BUILT as COMPONENTS
from todo_deploy.config import LoadedSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
# On a shared cluster, TEST_PREFIX (e.g. "h2-") starts every namespace and release made here.
PREFIX = os.environ.get("TEST_PREFIX", "")
T = TypeVar("T")


def _context_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or ".egg-info" in str(path) or "/build/" in str(path):
                continue
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(client, component: str) -> ImageRef:
    """The image as a hand-typed `docker build -f docker/<component>.Dockerfile app` makes it."""
    spec = COMPONENTS[component]
    context = ROOT / spec.context
    dockerfile = ROOT / spec.dockerfile
    tag = "it-" + _context_hash(*(ROOT / d for d in spec.source_dirs), context / ".dockerignore",
                                dockerfile)
    repository = f"todo-{component}"
    try:
        image = client.images.get(f"{repository}:{tag}")
    except Exception:  # noqa: BLE001 - not built yet
        image, _ = client.images.build(
            path=str(context), dockerfile=str(dockerfile), tag=f"{repository}:{tag}",
            buildargs={"PYTHON_IMAGE": PYTHON_IMAGE}, rm=True, forcerm=True,
        )
    return ImageRef(component, repository, tag, image.id, image.attrs.get("Size", 0))


def _derive(client, base: ImageRef, suffix: str, extra: str) -> ImageRef:
    """A new image FROM a built one with one more Dockerfile line (new ID, new tag)."""
    dockerfile = f"FROM {base.ref}\n{extra}\n".encode()
    # A tag of its own (content-addressed like the build's), so that names derived
    # from the tag's first characters (the migration Job's) differ as in real builds.
    tag = hashlib.sha256(f"{base.tag}\n{suffix}\n{extra}".encode()).hexdigest()[:16]
    with one_builder():
        image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{base.repository}:{tag}", rm=True)
    return ImageRef(base.component, base.repository, tag, image.id)


@contextmanager
def one_builder() -> Iterator[None]:
    """One image build at a time across pytest-xdist's workers: the second finds the first's
    image (or its cached layers) instead of building the same thing beside it on two cores."""
    try:
        import fcntl
    except ImportError:  # Windows: its workers build side by side
        yield
        return
    with open(Path(tempfile.gettempdir()) / "todo-test-builds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def built_images(docker_engine: None, kube_cluster: None) -> dict[str, ImageRef]:
    """backend + frontend built once per session from app/ and docker/."""
    import docker

    client = docker.from_env(timeout=600)
    with one_builder():
        return {c: _build(client, c) for c in ("backend", "frontend")}


@pytest.fixture(scope="session")
def changed_backend(built_images: dict[str, ImageRef]) -> ImageRef:
    """The backend with a one-line change: a new image ID and tag, same behaviour."""
    import docker

    return _derive(docker.from_env(timeout=600), built_images["backend"], "changed",
                   "LABEL org.example.todo.change=one-line")


@pytest.fixture(scope="session")
def broken_backend(built_images: dict[str, ImageRef]) -> ImageRef:
    """A backend image that cannot start (its command exits 1)."""
    import docker

    return _derive(docker.from_env(timeout=600), built_images["backend"], "broken",
                   'CMD ["python", "-c", "import sys; print(\'broken on purpose\'); sys.exit(1)"]')


@pytest.fixture(scope="session")
def unmigratable_backend(built_images: dict[str, ImageRef]) -> ImageRef:
    """A backend image whose migrations are gone: `python -m todo_api migrate` fails."""
    import docker

    script = ("import os, shutil, todo_api; "
              "shutil.rmtree(os.path.join(os.path.dirname(todo_api.__file__), 'migrations'))")
    return _derive(docker.from_env(timeout=600), built_images["backend"], "nomigrations",
                   f'USER root\nRUN ["/opt/venv/bin/python", "-c", "{script}"]\nUSER 10001:10001')


class Scratch:
    """One test's namespace, release and settings root (its own .state/)."""

    def __init__(self, root: Path, images: dict[str, ImageRef]) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.root = root
        self.namespace = f"{PREFIX or 'it-'}{suffix}"
        self.release = f"{PREFIX or 'todo-'}{suffix}"
        self.env = {
            "CLUSTER_PROVIDER": "existing",
            "KUBE_CONTEXT": os.environ.get("TEST_KUBE_CONTEXT", ""),
            "NAMESPACE": self.namespace,
            "RELEASE_NAME": self.release,
            "BACKEND_REPLICAS": "1",
            "FRONTEND_REPLICAS": "1",
            "FRONTEND_SERVICE_TYPE": "ClusterIP",
            "DEPLOY_TIMEOUT_SECONDS": "240",
            "PYTHON_BASE_IMAGE": PYTHON_IMAGE,
            "POSTGRES_IMAGE": POSTGRES_IMAGE,
            "LLM_PROVIDER": "offline",
        }
        self.set_images(images)

    @classmethod
    def existing(cls, root: Path, env: dict[str, str]) -> Scratch:
        """A deployment made elsewhere (the shared release), seen through this class."""
        s = cls.__new__(cls)
        s.root, s.env = root, dict(env)
        s.namespace, s.release = env["NAMESPACE"], env["RELEASE_NAME"]
        return s

    def set_images(self, images: dict[str, ImageRef]) -> None:
        save_images(self.root / ".state", images)

    def settings(self, **overrides: str) -> LoadedSettings:
        self.env.update(overrides)
        return load_settings(self.root, dict(self.env))


@pytest.fixture
def scratch(
    tmp_path: Path, built_images: dict[str, ImageRef]
) -> Iterator[Callable[[], Scratch]]:
    """Factory of scratch deployments; every namespace made is removed afterwards."""
    made: list[Scratch] = []

    def make() -> Scratch:
        s = Scratch(tmp_path / f"root{len(made)}", built_images)
        made.append(s)
        return s

    yield make
    for s in made:
        drop_namespace(s.settings())


def drop_namespace(loaded: LoadedSettings) -> None:
    """A fixture's cleanup: stop the port-forward, delete the namespace and go on. Waiting
    for it to vanish is `inv down`'s to test (test_deploy_raw, test_deploy_helm,
    test_broken_deployments); its volume goes with its claim (the cluster's provisioner)."""
    from todo_deploy.access import app_url
    from todo_deploy.kube import Kube, KubeError

    app_url.stop(loaded.state_dir)
    try:
        Kube(loaded.settings.context_name).delete("v1", "Namespace", loaded.settings.namespace)
    except KubeError as exc:
        if exc.status not in (404, 409):  # never made (the test stopped first), or already going
            raise


def poll_until(
    read: Callable[[], T], ready: Callable[[T], bool], deadline_s: float, interval_s: float = 1.0
) -> T:
    """`read()` every `interval_s` until `ready(result)` or the deadline; the last result."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = read()
        if ready(result) or time.monotonic() > deadline:
            return result
        time.sleep(interval_s)


def service_url(kube, namespace: str, name: str, port: int) -> str:
    """http://<ClusterIP>:<port> (ClusterIPs are reachable from the host here)."""
    svc = kube.get("v1", "Service", name, namespace)
    assert svc is not None, f"Service {name} missing"
    return f"http://{svc['spec']['clusterIP']}:{port}"


@pytest.fixture
def svc_url() -> Callable[..., str]:
    return service_url


def watched_project(tmp_path: Path, tag: str, backend_replicas: int) -> tuple[Path, dict[str, str]]:
    """A copy of the apps and Dockerfiles to edit (saves must not touch the checkout), and
    the settings of a scratch release for `inv watch` on it: namespace and release named
    `<prefix>TAG<hex>`, a ClusterIP frontend, the offline agent."""
    import shutil

    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv", "*.egg-info")
    shutil.copytree(ROOT / "docker", root / "docker", ignore=ignore)
    shutil.copytree(ROOT / "app", root / "app", ignore=ignore)  # both apps, common/, .dockerignore
    suffix = uuid.uuid4().hex[:6]
    env = {"CLUSTER_PROVIDER": "existing", "KUBE_CONTEXT": os.environ.get("TEST_KUBE_CONTEXT", ""),
           "NAMESPACE": f"{PREFIX or 'it-'}{tag}{suffix}", "RELEASE_NAME": f"{PREFIX or 'todo-'}{tag}{suffix}",
           "BACKEND_REPLICAS": str(backend_replicas), "FRONTEND_REPLICAS": "1",
           "FRONTEND_SERVICE_TYPE": "ClusterIP", "DEPLOY_TIMEOUT_SECONDS": "240",
           "PYTHON_BASE_IMAGE": PYTHON_IMAGE, "POSTGRES_IMAGE": POSTGRES_IMAGE, "LLM_PROVIDER": "offline"}
    return root, env
