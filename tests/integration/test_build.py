"""Stage 1 against a real Docker engine: both images build and pass the whole gate.

The base image is the settings' default (python:3.11-slim, or PYTHON_BASE_IMAGE),
pulled when the engine does not have it, as on a user's first run.
The real images (todo-backend/todo-frontend:<content tag>) are shared with other
tests and are never deleted here; only throw-away tags under a test-only
registry prefix are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PYTHON_IMAGE, require
from todo_deploy import images
from todo_deploy.artifacts import load_images
from todo_deploy.config import PROJECT_ROOT, LoadedSettings, load_settings
from todo_deploy.gates import Verdict
from todo_deploy.stages import build as build_stage
from todo_deploy.tools import gordon

pytestmark = pytest.mark.docker

BASE = PYTHON_IMAGE
TEST_REGISTRY = "todo-build-test.invalid"  # never resolvable: tags under it are ours to remove
TARGET_MB = {"backend": 120, "frontend": 60}  # the issue's targets (the budgets are settings)


@pytest.fixture(scope="module")
def loaded(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> LoadedSettings:
    root = tmp_path_factory.mktemp("build-root")
    (root / ".env").write_text("")
    return load_settings(root=root, environ={"PYTHON_BASE_IMAGE": BASE})


@pytest.fixture(scope="module")
def gate(loaded: LoadedSettings):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    result = build_stage.run(loaded, log=lines.append)
    return result, lines


def _client():  # type: ignore[no-untyped-def]
    return images.engine()


def test_both_images_build_and_pass_the_whole_gate(gate, loaded: LoadedSettings) -> None:  # type: ignore[no-untyped-def]
    result, _ = gate
    table = "\n".join(f"{c.name}: {c.verdict} {c.evidence} {c.fix}" for c in result.checks)
    assert result.passed, table
    names = {c.name for c in result.checks}
    for component in ("backend", "frontend"):
        for check in ("lint", "build", "size", "healthy", "endpoint", "non-root", "cleanup"):
            assert f"{check} {component}" in names, table
    assert all(c.verdict is Verdict.PASS for c in result.checks), table

    recorded = load_images(loaded.state_dir)
    client = _client()
    for component in ("backend", "frontend"):
        info = result.details["images"][component]
        image = client.images.get(info["ref"])
        assert image.id == info["image_id"] == recorded[component].image_id
        assert recorded[component].ref == info["ref"] == images.plan(loaded, component).ref
        assert info["base_image"] == BASE
        assert info["added_bytes"] == info["size_bytes"] - info["base_size_bytes"] > 0
        assert info["added_bytes"] <= TARGET_MB[component] * 1_000_000, (
            f"{component} adds {info['added_bytes'] / 1e6:.1f} MB above {BASE}"
        )
        config = image.attrs["Config"]
        assert config["User"] == "10001:10001"
        assert config["Cmd"][:2] == ["/opt/venv/bin/python", "-m"]
        assert config["Healthcheck"]["Test"][0] == "CMD"
        assert "PYTHONUNBUFFERED=1" in config["Env"]
        size = next(c for c in result.checks if c.name == f"size {component}")
        assert f"{info['added_bytes'] / 1e6:.1f} MB above {BASE}" in size.evidence
        print(f"{component}: {info['ref']} {info['size_bytes'] / 1e6:.1f} MB, "
              f"{info['added_bytes'] / 1e6:.1f} MB above {BASE}")
    # The smoke-test containers are gone.
    leftovers = client.containers.list(all=True, filters={"label": "todo-deploy.gate=build"})
    assert leftovers == []


def test_the_images_hold_no_compiler_cache_or_secret(gate) -> None:  # type: ignore[no-untyped-def]
    result, _ = gate
    client = _client()
    script = (
        "import os, shutil, sys; "
        "print(shutil.which('gcc'), shutil.which('pip'), os.path.exists('/root/.cache/pip'), "
        "os.path.exists('/src'), sys.prefix)"
    )
    for component in ("backend", "frontend"):
        out = client.containers.run(
            result.details["images"][component]["ref"], ["/opt/venv/bin/python", "-c", script],
            remove=True,
        ).decode().split()
        assert out == ["None", "None", "False", "False", "/opt/venv"], out


def test_a_second_build_is_skipped_in_well_under_a_second(gate, loaded: LoadedSettings) -> None:  # type: ignore[no-untyped-def]
    result, _ = gate
    assert result.passed
    lines: list[str] = []
    started = time.perf_counter()
    outcomes = images.ensure_built(loaded, log=lines.append)  # connects to the engine afresh
    elapsed = time.perf_counter() - started
    message = (
        f"second build (both images, engine connect + hash + lookup): {elapsed:.3f} s; "
        + ", ".join(f"{n} {o.seconds:.3f} s" for n, o in outcomes.items())
    )
    print(message)
    assert all(o.skipped for o in outcomes.values()), message
    assert elapsed < 1.0, message
    for name, outcome in outcomes.items():
        assert outcome.image.ref == result.details["images"][name]["ref"]
        assert any(f"{outcome.image.ref} is up to date, build skipped" in line for line in lines)


def test_gordon_absent_is_one_line_and_a_skip(loaded: LoadedSettings, gate) -> None:  # type: ignore[no-untyped-def]
    from todo_deploy.tools.commands import Runner

    present = gordon.available(Runner(log=lambda _: None))
    lines: list[str] = []
    result = build_stage.run(loaded, gordon=True, only="frontend", log=lines.append)
    check = next(c for c in result.checks if c.name == "gordon")
    assert result.passed
    if present:  # Docker Desktop with Gordon: its advice is stored
        assert check.verdict in (Verdict.PASS, Verdict.WARN)
        return
    assert check.verdict is Verdict.SKIP
    assert [line for line in lines if "Gordon" in line] == [gordon.NOT_FOUND]
    assert result.details["gordon"] == {"available": False, "message": gordon.NOT_FOUND}
    assert "build frontend" in {c.name for c in result.checks}


def test_no_cache_rebuilds_under_the_same_tag(loaded: LoadedSettings, tmp_path: Path) -> None:
    # Under the test's own repository name: re-pointing the real tag to a fresh image ID
    # would break any deployment that recorded the old ID (image identity checks).
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "docker", root / "docker")
    shutil.copytree(PROJECT_ROOT / "app", root / "app",  # the frontend's context (and common/)
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    (root / ".env").write_text(f"IMAGE_REGISTRY={TEST_REGISTRY}\n")
    own = load_settings(root=root, environ={"PYTHON_BASE_IMAGE": BASE})
    client = _client()
    try:
        first = images.ensure_built(own, log=lambda _: None, only="frontend")["frontend"]
        lines: list[str] = []
        again = images.ensure_built(own, log=lines.append, only="frontend", no_cache=True)
        rebuilt = again["frontend"]
        assert not rebuilt.skipped
        assert rebuilt.image.ref == first.image.ref
        assert rebuilt.image.ref.startswith(f"{TEST_REGISTRY}/todo-frontend:")
        assert any("Step 7/" in line and "pip install" in line for line in lines), lines
        assert not any("Using cache" in line for line in lines)
    finally:
        for image in client.images.list(name=f"{TEST_REGISTRY}/todo-frontend"):
            for tag in image.tags:
                client.images.remove(tag, force=True)


# --- failure paths, with throw-away images under TEST_REGISTRY ----------------------------


@pytest.fixture
def scratch_project(docker_engine: None, tmp_path: Path) -> Iterator[Path]:
    """A project whose docker/ holds the test's own Dockerfiles; its tags are removed after."""
    root = tmp_path / "project"
    for component in ("backend", "frontend"):
        spec = images.COMPONENTS[component]
        app = root / spec.app_dir
        app.mkdir(parents=True)
        (app / "requirements.txt").write_text("")
        (root / "docker").mkdir(exist_ok=True)
    (root / ".env").write_text(f"IMAGE_REGISTRY={TEST_REGISTRY}\n")
    yield root
    client = _client()
    for image in client.images.list(name=f"{TEST_REGISTRY}/*"):
        for tag in image.tags:
            if tag.startswith(f"{TEST_REGISTRY}/"):
                client.images.remove(tag, force=True)


def _scratch_settings(root: Path) -> LoadedSettings:
    return load_settings(root=root, environ={"PYTHON_BASE_IMAGE": BASE})


def test_a_failing_build_is_a_failed_check_with_a_fix(scratch_project: Path) -> None:
    (scratch_project / "docker/backend.Dockerfile").write_text(
        "ARG PYTHON_IMAGE=python:3.12-slim\nFROM ${PYTHON_IMAGE}\n"
        "RUN echo 'about to fail' && exit 3\n"
    )
    result = build_stage.run(_scratch_settings(scratch_project), only="backend", log=lambda _: None)
    assert not result.passed
    build = next(c for c in result.checks if c.name == "build backend")
    assert build.verdict is Verdict.FAIL
    assert "returned a non-zero code: 3" in build.evidence
    assert "about to fail" in build.evidence
    assert "inv build --no-cache" in build.fix
    assert not any(c.name.startswith(("healthy", "size")) for c in result.checks)


def test_an_unhealthy_root_image_fails_its_checks_and_is_removed(scratch_project: Path) -> None:
    # The frontend's smoke test runs the image's own CMD: a sleeper that never answers.
    (scratch_project / "docker/frontend.Dockerfile").write_text(
        "ARG PYTHON_IMAGE=python:3.12-slim\nFROM ${PYTHON_IMAGE}\n"
        'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["python3", "-c", "raise SystemExit(1)"]\n'
        'CMD ["python3", "-c", "import time; time.sleep(120)"]\n'
    )
    loaded = _scratch_settings(scratch_project)
    outcome = images.ensure_built(loaded, log=lambda _: None, only="frontend")["frontend"]
    assert outcome.image.repository == f"{TEST_REGISTRY}/todo-frontend"
    client = _client()
    started = time.monotonic()
    checks = {c.name: c for c in build_stage.smoke_test(
        client, "frontend", outcome.image, log=lambda _: None, timeout=6
    )}
    assert time.monotonic() - started < 20
    assert checks["healthy frontend"].verdict is Verdict.FAIL
    assert "'unhealthy'" in checks["healthy frontend"].evidence
    assert checks["endpoint frontend"].verdict is Verdict.FAIL
    assert "GET /healthz got no 200" in checks["endpoint frontend"].evidence
    non_root = checks["non-root frontend"]
    assert non_root.verdict is Verdict.FAIL
    assert "Config.User=(empty)" in non_root.evidence and "`id -u` inside = 0" in non_root.evidence
    assert "USER 10001:10001" in non_root.fix
    assert checks["cleanup frontend"].verdict is Verdict.PASS
    assert client.containers.list(all=True, filters={"label": "todo-deploy.gate=build"}) == []


def test_an_image_that_cannot_start_fails_and_leaves_no_container(scratch_project: Path) -> None:
    # No /opt/venv/bin/python: the backend's smoke command cannot even be executed.
    (scratch_project / "docker/backend.Dockerfile").write_text(
        "ARG PYTHON_IMAGE=python:3.12-slim\nFROM ${PYTHON_IMAGE}\nUSER 10001:10001\n"
    )
    loaded = _scratch_settings(scratch_project)
    outcome = images.ensure_built(loaded, log=lambda _: None, only="backend")["backend"]
    client = _client()
    checks = build_stage.smoke_test(client, "backend", outcome.image, log=lambda _: None)
    assert [(c.name, c.verdict) for c in checks] == [
        ("healthy backend", Verdict.FAIL), ("cleanup backend", Verdict.PASS)
    ]
    assert "could not start" in checks[0].evidence and "/opt/venv/bin/python" in checks[0].evidence
    assert client.containers.list(all=True, filters={"label": "todo-deploy.gate=build"}) == []


def test_push_to_an_unreachable_registry_fails_clearly(loaded: LoadedSettings, gate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("IMAGE_REGISTRY=127.0.0.1:9\n")
    registry_settings = load_settings(root=tmp_path, environ={"PYTHON_BASE_IMAGE": BASE})
    client = _client()
    source = gate[0].details["images"]["backend"]
    image = images.ensure_built(registry_settings, log=lambda _: None, only="backend")["backend"].image
    assert image.tag == source["ref"].split(":")[-1]
    try:
        with pytest.raises(images.PushError) as caught:
            images.push_image(image, log=lambda _: None, client=client)
        assert "127.0.0.1:9" in str(caught.value) and "IMAGE_REGISTRY" in str(caught.value)
    finally:
        client.images.remove(image.ref)  # only our extra tag: the image keeps its real one
    assert client.images.get(source["ref"]).id == source["image_id"]


def test_push_without_a_registry_exits_1_before_doing_anything(tmp_path: Path) -> None:
    scratch = tmp_path / "tasks"
    scratch.mkdir()
    (scratch / "tasks.py").write_text(
        "from invoke import Collection\nfrom todo_deploy.cli.build import build\n"
        "ns = Collection(build)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "IMAGE_REGISTRY"}
    env.update(TODO_DEPLOY_ROOT=str(tmp_path), PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(scratch), "build", "--push"],
        check=False, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--push needs a registry: set IMAGE_REGISTRY" in done.stderr
    assert not (tmp_path / ".state").exists()


@pytest.fixture
def local_registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real registry (Debian's docker-registry) on a loopback port, removed afterwards."""
    binary = shutil.which("docker-registry")
    require(binary is not None, "docker-registry (apt-get install docker-registry)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "registry.yml"  # no auth, storage in tmp_path (Debian's default has auth)
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [str(binary), "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "registry did not start"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_build_push_reaches_a_real_registry(loaded: LoadedSettings, gate, tmp_path: Path,  # type: ignore[no-untyped-def]
                                            local_registry: str) -> None:
    (tmp_path / ".env").write_text(f"IMAGE_REGISTRY={local_registry}\n")
    pushed = load_settings(root=tmp_path, environ={"PYTHON_BASE_IMAGE": BASE})
    result = build_stage.run(pushed, push=True, only="frontend", log=lambda _: None)
    client = _client()
    try:
        assert result.passed, [c for c in result.checks if c.verdict is Verdict.FAIL]
        ref = result.details["images"]["frontend"]["ref"]
        assert ref.startswith(f"{local_registry}/todo-frontend:")
        tags = json.loads(urllib.request.urlopen(
            f"http://{local_registry}/v2/todo-frontend/tags/list", timeout=5).read())
        assert tags["tags"] == [ref.rsplit(":", 1)[1]]
    finally:
        for image in client.images.list(name=f"{local_registry}/todo-frontend"):
            for tag in image.tags:
                client.images.remove(tag)


def test_a_missing_base_image_is_pulled_then_built(scratch_project: Path) -> None:
    """A new machine: the base image is not in the engine; the build pulls it first."""
    (scratch_project / "docker/backend.Dockerfile").write_text(
        "ARG PYTHON_IMAGE=python:3.11-slim\nFROM ${PYTHON_IMAGE}\nUSER 10001:10001\n"
        f"LABEL pulled-test={time.time_ns()}\n"  # a new tag: never skipped as up to date
    )
    client = _client()
    client.images.remove(BASE, noprune=True)  # untag only: the layers stay for other tests
    lines: list[str] = []
    outcome = images.build_image(
        _scratch_settings(scratch_project), "backend", log=lines.append, client=client
    )
    assert not outcome.skipped
    assert f"pulling {BASE} (not present in the Docker engine yet)" in lines
    assert any(line.startswith(f"pulled {BASE} in ") for line in lines), lines
    client.images.get(BASE)  # the tag is back
    assert client.images.get(outcome.image.ref).id == outcome.image.image_id


def test_a_base_image_that_cannot_be_pulled_fails_the_gate_naming_it(
    docker_engine: None, tmp_path: Path
) -> None:
    missing = "python:0.0-no-such-tag"
    (tmp_path / ".env").write_text(f"PYTHON_BASE_IMAGE={missing}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_BASE_IMAGE"}
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "build"], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=600, check=False,
        env={**env, "TODO_DEPLOY_ROOT": str(tmp_path), "COLUMNS": "250", "NO_COLOR": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"cannot pull {missing}" in output, output
    assert f"PYTHON_BASE_IMAGE={missing}" in output  # the fix names the setting
    assert "build gate failed: base image backend, base image frontend" in output
    assert "Traceback" not in output


def test_sizes_are_measured_when_the_base_tag_is_gone(gate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Built images outlive their base's tag (`docker rmi`, a new clone's empty .state):
    the up-to-date build measures its size against the base pulled again, not against 0."""
    (tmp_path / ".env").write_text("")
    fresh = load_settings(root=tmp_path, environ={"PYTHON_BASE_IMAGE": BASE})
    _client().images.remove(BASE, noprune=True)
    lines: list[str] = []
    result = build_stage.run(fresh, log=lines.append)
    sizes = {c.name: c for c in result.checks if c.name.startswith("size ")}
    assert {c.verdict for c in sizes.values()} == {Verdict.PASS}, sizes
    assert all(f"above {BASE}" in c.evidence for c in sizes.values())
    assert any(line.startswith(f"pulling {BASE}") for line in lines), lines
