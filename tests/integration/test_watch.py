"""`inv watch` on the real cluster, editing a COPY of app/ and docker/ (never the real
tree): a saved one-line change is built, rolled and answers; a change that does not
build deploys nothing; a change that builds but cannot start is rolled back. The old
version serves throughout, and the gates left behind are the ones `inv verify` needs."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import drop_namespace, watched_project
from todo_deploy.artifacts import images_path, load_images
from todo_deploy.config import load_settings
from todo_deploy.gates import load as load_gate
from todo_deploy.kube import Kube
from todo_deploy.watch import Outcome, watch

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(900)]

VERSION = re.compile(r'^__version__ = ".*"$', re.MULTILINE)


class Answers(threading.Thread):
    """GETs /api/meta through the Service back to back, a new connection each (a kept-alive
    one stays with an old pod while it drains); keeps every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=3, limits=limits) as client:
            while not self.stop.is_set():
                try:
                    self.seen.append(client.get(self.url).json()["version"])
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.seen.append(f"error: {exc!r}")
                time.sleep(0.05)

    def wait_for(self, version: str, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.seen[-3:] == [version] * 3:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"never answered {version}; last answers {self.seen[-5:]}")


def test_watch_rolls_saves_and_keeps_serving_through_broken_ones(
    tmp_path: Path, docker_engine: None, kube_cluster: None
) -> None:
    from todo_deploy.pipeline import record
    from todo_deploy.stages import build, raw_deploy

    root, env = watched_project(tmp_path, "w", backend_replicas=1)
    namespace, release = env["NAMESPACE"], env["RELEASE_NAME"]
    loaded = load_settings(root, env)
    edited = root / "app/backend/todo_api/__init__.py"

    def save(version: str, extra: str = "") -> None:
        edited.write_text(VERSION.sub(f'__version__ = "{version}"', edited.read_text()) + extra)

    outcomes: list[Outcome] = []
    stop = threading.Event()
    lines: list[str] = []
    thread = None
    answers = None
    try:
        save("1.0.0+watch.0")
        built = build.run(loaded, log=print)
        assert built.passed, [(c.name, c.evidence) for c in built.failures]
        record(loaded, built)
        first = raw_deploy.run(loaded, log=print)
        assert first.passed, [(c.name, c.evidence) for c in first.failures]
        record(loaded, first)
        kube = Kube(loaded.settings.context_name)
        svc = kube.get("v1", "Service", f"{release}-backend", namespace)
        answers = Answers(f"http://{svc['spec']['clusterIP']}:8000/api/meta")
        answers.start()
        answers.wait_for("1.0.0+watch.0", 60)

        def log(line: str) -> None:
            lines.append(line)
            print(line)

        thread = threading.Thread(target=watch, args=(loaded,), daemon=True, kwargs={
            "log": log, "stop": stop, "on_outcome": outcomes.append, "timeout_s": 120})
        thread.start()
        deadline = time.monotonic() + 30
        while not any(line.startswith("watching ") for line in lines):
            assert time.monotonic() < deadline, "inv watch did not start"
            time.sleep(0.1)
        time.sleep(0.5)

        def next_outcome(count: int, timeout: float = 300) -> Outcome:
            deadline = time.monotonic() + timeout
            while len(outcomes) < count:
                assert time.monotonic() < deadline, f"no outcome {count}; log: {lines[-20:]}"
                time.sleep(0.1)
            return outcomes[count - 1]

        # 1. A saved one-line change: built, rolled, answering.
        save("1.0.0+watch.1")
        seconds = answers.wait_for("1.0.0+watch.1", 180)
        print(f"save -> new code answering: {seconds:.1f} s")
        first_change = next_outcome(1)
        assert first_change.ok and first_change.components == {"backend"}, first_change.message
        serving_image = load_images(loaded.state_dir)["backend"]
        assert load_gate(loaded.state_dir, "build").passed
        assert load_gate(loaded.state_dir, "deploy").passed
        mark = len(answers.seen)

        # 2. A file that does not compile: the build fails, nothing is deployed.
        broken = root / "app/backend/todo_api/broken_on_purpose.py"
        broken.write_text("def broken(:\n")
        failed_build = next_outcome(2)
        assert not failed_build.ok and "build failed" in failed_build.message
        broken.unlink()
        next_outcome(3)  # back to the serving image's content: nothing to deploy
        assert outcomes[2].ok and "no image changed" in outcomes[2].message

        # 3. Builds, but cannot start: the rollout fails and the previous image is put back.
        save("1.0.0+watch.3", "raise SystemExit('cannot start, on purpose')\n")
        crashed = next_outcome(4)
        assert not crashed.ok and crashed.rolled_back, crashed.message
        assert "rollout failed" in crashed.message

        # The first change served throughout both broken ones.
        assert set(answers.seen[mark:]) == {"1.0.0+watch.1"}, set(answers.seen[mark:])
        assert load_images(loaded.state_dir)["backend"] == serving_image
        deploy_gate = load_gate(loaded.state_dir, "deploy")
        assert deploy_gate.passed
        from todo_deploy.pipeline import deployed_basis

        assert deploy_gate.basis == deployed_basis(loaded, "deploy"), "verify would call it stale"
        pods = kube.list("v1", "Pod", namespace, "app.kubernetes.io/component=backend")
        assert {p["spec"]["containers"][0]["image"] for p in pods
                if not p["metadata"].get("deletionTimestamp")} == {serving_image.ref}
    finally:
        stop.set()
        if thread is not None:
            thread.join(60)
            assert not thread.is_alive(), "inv watch did not stop"
        if answers is not None:
            answers.stop.set()
        _delete(loaded)
    assert lines[-1].startswith("watch: stopped (4 change(s) handled)"), lines[-1]
    assert images_path(loaded.state_dir).exists()


def _delete(loaded: Any) -> None:
    drop_namespace(loaded)  # `inv down` is test_deploy_raw's: here the namespace just goes
