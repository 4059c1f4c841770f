"""Live update on the real cluster (issue 24), editing a COPY of app/ and docker/ (never the
real tree): deployed in dev mode as `inv up --dev` does, then `inv watch --dev`'s loop. A
one-line backend edit (and a frontend one) is synced and served through the frontend without
a new ReplicaSet;
an edit that cannot import is refused and the previous code keeps serving; a requirements
change falls back to the rebuild, saying so; a normal deploy afterwards replaces the dev
pods and verify's image identity passes again."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import drop_namespace, watched_project
from todo_deploy.artifacts import load_images
from todo_deploy.gates import Verdict
from todo_deploy.kube import Kube
from todo_deploy.release.live_update import DEV_CODE, DEV_LABEL
from todo_deploy.watch import Outcome, watch

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(1200)]

VERSION = re.compile(r'^__version__ = ".*"$', re.MULTILINE)


def replica_sets(kube: Kube, namespace: str) -> set[str]:
    return {rs["metadata"]["name"] for rs in kube.list("apps/v1", "ReplicaSet", namespace)
            if (rs.get("spec") or {}).get("replicas")}


def app_pods(kube: Kube, namespace: str, component: str) -> list[dict[str, Any]]:
    return [p for p in kube.list("v1", "Pod", namespace, f"app.kubernetes.io/component={component}")
            if not p["metadata"].get("deletionTimestamp")]


def meta(url: str, within: float = 60) -> tuple[str, Any, str | None]:
    """/api/meta through the frontend on a new connection: (version, code, X-Code-Version).
    Asked again while the Service's new endpoints reach the node (refused until then)."""
    deadline = time.monotonic() + within
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while True:
            try:
                answer = client.get(f"{url}/api/meta")
                answer.raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    body = answer.json()
    return body.get("version", ""), body.get("code"), answer.headers.get("X-Code-Version")


def test_live_update_syncs_refuses_broken_code_falls_back_and_returns_to_the_images(
    tmp_path: Path, docker_engine: None, kube_cluster: None
) -> None:
    from todo_deploy.pipeline import record
    from todo_deploy.stages import build, raw_deploy
    from todo_deploy.stages.verify.checks import VerifyContext, check_image_identity

    root, env = watched_project(tmp_path, "lu", backend_replicas=2)
    namespace, release = env["NAMESPACE"], env["RELEASE_NAME"]
    from todo_deploy.config import load_settings

    loaded = load_settings(root, env)
    edited = root / "app/backend/todo_api/__init__.py"
    original = edited.read_text()
    outcomes: list[Outcome] = []
    lines: list[str] = []
    stop = threading.Event()
    thread = None

    def log(line: str) -> None:
        lines.append(line)
        print(line)

    def next_outcome(count: int, timeout: float = 600) -> Outcome:
        deadline = time.monotonic() + timeout
        while len(outcomes) < count:
            assert time.monotonic() < deadline, f"no outcome {count}; log: {lines[-20:]}"
            time.sleep(0.1)
        return outcomes[count - 1]

    try:
        # `inv up --dev`: built, then deployed in dev mode.
        built = build.run(loaded, log=print)
        assert built.passed, [(c.name, c.evidence) for c in built.failures]
        record(loaded, built)
        deployed = raw_deploy.run(loaded, log=print, dev=True)
        assert deployed.passed, [(c.name, c.evidence) for c in deployed.failures]
        assert deployed.details["dev"] is True
        record(loaded, deployed)
        kube = Kube(loaded.settings.context_name)
        for component in ("backend", "frontend"):
            pods = app_pods(kube, namespace, component)
            assert pods and all(p["metadata"]["labels"].get(DEV_LABEL) == "true" for p in pods)
        svc = kube.get("v1", "Service", f"{release}-frontend", namespace)
        assert svc is not None
        url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        version, code, _ = meta(url)
        assert code == "image", (version, code)
        sets_before = replica_sets(kube, namespace)

        thread = threading.Thread(target=watch, args=(loaded,), daemon=True, kwargs={
            "log": log, "stop": stop, "on_outcome": outcomes.append, "timeout_s": 240,
            "dev": True, "deploy_first": False,
            "frontend_url": lambda: contextlib.nullcontext(url)})
        thread.start()
        deadline = time.monotonic() + 30
        while not any(line.startswith("watching ") for line in lines):
            assert time.monotonic() < deadline, "inv watch --dev did not start"
            time.sleep(0.1)
        time.sleep(0.5)

        # 1. A one-line backend edit: synced into both backend pods, served through the frontend.
        edited.write_text(VERSION.sub('__version__ = "1.0.0+live.1"', original))
        synced = next_outcome(1)
        assert synced.ok, synced.message
        assert "(no image built, no pod replaced): serving " in synced.message
        served = re.search(r"serving ([0-9.]+) s after the save", synced.message)
        assert served, synced.message
        seconds = float(served.group(1))
        print(f"save -> synced code serving through the frontend: {seconds:.1f} s")
        version, code, _ = meta(url)
        assert version == "1.0.0+live.1"
        assert replica_sets(kube, namespace) == sets_before, "a sync made a new ReplicaSet"
        generations = {p["metadata"].get("annotations", {}).get(DEV_CODE)
                       for p in app_pods(kube, namespace, "backend")}
        assert generations == {code}, (generations, code)

        # ... and a one-line frontend edit: its X-Code-Version names the sync.
        template = root / "app/frontend/todo_web/templates/base.html"
        template.write_text(template.read_text() + "<!-- live update -->\n")
        frontend_synced = next_outcome(2)
        assert frontend_synced.ok, frontend_synced.message
        header = meta(url)[2]
        assert {p["metadata"].get("annotations", {}).get(DEV_CODE)
                for p in app_pods(kube, namespace, "frontend")} == {header}
        assert replica_sets(kube, namespace) == sets_before, "a sync made a new ReplicaSet"

        # 2. An edit that cannot import: refused, the previous code keeps serving.
        edited.write_text(VERSION.sub('__version__ = "1.0.0+live.2"', original)
                          + "import todo_api_no_such_module_on_purpose\n")
        broken = next_outcome(3)
        assert not broken.ok and "the previous code keeps serving" in broken.message, broken.message
        assert "todo_api_no_such_module_on_purpose" in broken.message
        assert meta(url)[:2] == ("1.0.0+live.1", code)

        # Back to the good edit (synced again: the same content, the same generation).
        edited.write_text(VERSION.sub('__version__ = "1.0.0+live.1"', original))
        assert next_outcome(4).ok, outcomes[3].message

        # 3. A requirements change: not synced, the rebuild-and-roll is tried, and said.
        requirements = root / "app/backend/requirements.txt"
        requirements.write_text(requirements.read_text() + "# a comment: the layer changes\n")
        rebuilt = next_outcome(5, timeout=900)
        assert any("cannot sync app/backend/requirements.txt (dependencies changed: requirements.txt): "
                   "rebuilding and rolling instead" in line for line in lines), lines[-10:]
        assert "synced as" not in rebuilt.message, rebuilt.message
        stop.set()
        thread.join(120)
        assert not thread.is_alive(), "inv watch --dev did not stop"

        # 4. A normal deploy: the pods are replaced from the built images, image identity holds.
        normal = raw_deploy.run(loaded, log=print)
        assert normal.passed, [(c.name, c.evidence) for c in normal.failures]
        assert normal.details["dev"] is False
        for component in ("backend", "frontend"):
            pods = app_pods(kube, namespace, component)
            assert pods and not any(DEV_LABEL in p["metadata"]["labels"] for p in pods), component
        ctx = VerifyContext(loaded.settings, url, log=print, images=load_images(loaded.state_dir))
        ctx.kube = kube
        [identity] = check_image_identity(ctx)
        assert identity.verdict is Verdict.PASS, identity.evidence
        # The image's own code (no TODO_CODE_VERSION), once the frontend's kept-alive
        # connections to the draining dev pods are gone: three answers in a row.
        deadline, codes = time.monotonic() + 60, [meta(url)[1] for _ in range(3)]
        while codes[-3:] != [None] * 3 and time.monotonic() < deadline:
            codes.append(meta(url)[1])
            time.sleep(0.2)
        assert codes[-3:] == [None] * 3, codes[-5:]
    finally:
        stop.set()
        if thread is not None:
            thread.join(120)
        drop_namespace(loaded)
