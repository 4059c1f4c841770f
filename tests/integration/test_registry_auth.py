"""Drill (issue 23: 2): a registry that needs credentials, for real.

An htpasswd-protected registry (Debian's `docker-registry`, the file made by `htpasswd
-Bbn`) on 127.0.0.1; `docker login` writes a config of its own (a fresh DOCKER_CONFIG) and
REGISTRY_AUTH_FILE names it; `inv build --push`'s push step logs in with its entry and
pushes; the tags this test made are removed from the engine (the node shares it), so the
kubelet must pull through the registry with the pull Secret the deploy makes from that
entry; the pods then run the pushed digests. Then REGISTRY_USERNAME with a wrong
REGISTRY_PASSWORD: the deploy fails and the doctor's diagnosis names ErrImagePull,
unauthorized and the setting.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.conftest import Scratch
from todo_deploy import images
from todo_deploy.artifacts import ImageRef, load_images
from todo_deploy.chart import values as chart_values
from todo_deploy.gates import GateResult
from todo_deploy.kube import Kube
from todo_deploy.stages import build as build_stage
from todo_deploy.stages import raw_deploy
from todo_deploy.timing import Timeline

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(400)]

REGISTRY_BINARY = "/usr/bin/docker-registry"
USER = "drill"
PASSWORD = "drill-pass-7f3a9c1e5b"
WRONG = "wrong-pass-0c8d2e6a41"


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:<port>


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_401(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False
    return False


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """The registry on a free loopback port, its storage and htpasswd in tmp_path."""
    require(Path(REGISTRY_BINARY).exists(), "docker-registry (Debian package docker-registry)")
    require(shutil.which("htpasswd") is not None, "htpasswd (Debian package apache2-utils)")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                       capture_output=True, text=True).stdout)
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: todo-drill\n    path: {htpasswd}\n"
    )
    log = (tmp_path / "registry.log").open("w")
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while not _answers_401(f"http://127.0.0.1:{port}/v2/"):
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not answer in 15 s"
            time.sleep(0.1)
        yield Registry(f"127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


class OwnTags:
    """The references this test makes in the shared engine, and only those, removed."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env(timeout=300)
        self.refs: set[str] = set()

    def tag(self, image: ImageRef, repository: str) -> None:
        assert self.client.images.get(image.ref).tag(repository, image.tag)
        self.refs.add(f"{repository}:{image.tag}")

    def remove(self, refs: set[str] | None = None) -> None:
        """Untag (never delete an image others use: the built one keeps its own tag)."""
        from docker.errors import ImageNotFound

        for ref in sorted(self.refs if refs is None else refs):
            try:
                self.client.images.remove(ref, noprune=True)
            except ImageNotFound:
                pass

    def present(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(ref)
        except ImageNotFound:
            return False
        return True


@pytest.fixture
def own_tags() -> Iterator[OwnTags]:
    tags = OwnTags()
    yield tags
    tags.remove()


def _push_like_inv_build(scratch: Scratch, registry_images: dict[str, ImageRef],
                         client: object, lines: list[str]) -> GateResult:
    """`inv build --push`'s step after a passing gate (images up to date here: the build
    itself is test_build's): log in with the settings' credentials, push, record digests."""
    loaded = scratch.settings()
    scratch.set_images(registry_images)
    result = GateResult("build")
    outcomes = {name: images.BuildOutcome(ref, True, 0.0, "", 0)
                for name, ref in registry_images.items()}
    build_stage.push_images(loaded, result, outcomes, Timeline(), client, lines.append)
    return result


def _app_pods(kube: Kube, s: Scratch) -> list[dict]:
    pods = kube.list("v1", "Pod", s.namespace, f"app.kubernetes.io/instance={s.release}")
    return [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component")
            in ("backend", "frontend") and not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") == "Running"]


def test_pull_with_credentials_and_a_wrong_password_diagnosed(
    scratch: Callable[[], Scratch], built_images: dict[str, ImageRef], registry: Registry,
    own_tags: OwnTags,
) -> None:
    s = scratch()
    docker_config = s.root / "docker-config"
    docker_config.mkdir(parents=True)
    subprocess.run(["docker", "login", "--username", USER, "--password-stdin", registry.host],
                   input=PASSWORD, text=True, check=True, capture_output=True,
                   env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_CONFIG": str(docker_config)})
    s.settings(IMAGE_REGISTRY=registry.host, REGISTRY_AUTH_FILE="docker-config/config.json",
               DEPLOY_TIMEOUT_SECONDS="120")
    ours = {name: ImageRef(name, f"{registry.host}/{ref.repository}", ref.tag, ref.image_id,
                           ref.size_bytes)
            for name, ref in built_images.items()}
    for name, ref in ours.items():
        own_tags.tag(built_images[name], ref.repository)

    lines: list[str] = []
    pushed = _push_like_inv_build(s, ours, own_tags.client, lines)
    assert pushed.passed, pushed.checks
    recorded = load_images(s.root / ".state")
    digests = {name: recorded[name].digest for name in ours}
    assert all(d.startswith("sha256:") for d in digests.values()), digests
    said = "\n".join(lines)
    assert f"logged in to {registry.host} as {USER} (REGISTRY_AUTH_FILE" in said, said
    own_tags.refs |= {f"{ref.repository}@{digests[name]}" for name, ref in ours.items()}

    # The node shares this engine: without our tags the kubelet must pull with the Secret.
    own_tags.remove()
    assert not any(own_tags.present(ref.ref) for ref in ours.values())

    out: list[str] = []
    result = raw_deploy.run(s.settings(), log=out.append)
    assert result.passed, (result.checks, "\n".join(out[-30:]))
    kube = Kube(s.settings().settings.context_name)
    pull_secret = chart_values.SECRET_REGISTRY.format(release=s.release)
    secret = kube.get("v1", "Secret", pull_secret, s.namespace)
    assert secret is not None and secret["type"] == "kubernetes.io/dockerconfigjson"
    pods = _app_pods(kube, s)
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods} == {
        "backend", "frontend"}
    for pod in pods:
        assert pod["spec"]["imagePullSecrets"] == [{"name": pull_secret}]
        component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"], pod["metadata"]["name"]
        # Pulled from the registry: the kubelet reports the pushed manifest digest.
        assert status["imageID"].endswith(f"{ours[component].repository}@{digests[component]}"), \
            status["imageID"]
    check = next(c for c in result.checks if c.name == "pods run exactly the built images")
    print(f"pushed {digests}; deploy: {check.name}: {check.evidence}")
    assert "pushed digests" in check.evidence

    # The password is in the Secret only: not in the output, nor in any other object.
    import json

    every = json.dumps([kube.list("v1", kind, s.namespace) for kind in
                        ("ConfigMap", "Pod", "ServiceAccount")])
    every += json.dumps(kube.list("apps/v1", "Deployment", s.namespace))
    assert PASSWORD not in every and PASSWORD not in "\n".join(lines + out)

    # A wrong password: the pull Secret changes, the pods roll and must pull again.
    own_tags.refs |= {ref.ref for ref in ours.values()}  # the kubelet's pull tagged them again
    own_tags.remove()
    started = time.monotonic()
    bad: list[str] = []
    failed = raw_deploy.run(s.settings(REGISTRY_AUTH_FILE="", REGISTRY_USERNAME=USER,
                                   REGISTRY_PASSWORD=WRONG), log=bad.append)
    assert not failed.passed
    diagnosis = failed.details["diagnosis"]
    print(f"wrong REGISTRY_PASSWORD: deploy failed in {time.monotonic() - started:.1f} s:\n"
          f"{diagnosis}")  # the closing note quotes it (pytest -s)
    assert "ErrImagePull" in diagnosis and "unauthorized" in diagnosis, diagnosis
    assert "registry refused the pull" in diagnosis, diagnosis
    assert "fix REGISTRY_PASSWORD" in diagnosis, diagnosis
    assert time.monotonic() - started < 90, "an unauthorized pull should fail the wait at once"
    assert WRONG not in "\n".join(bad)
