"""Pipeline timings: ours (`inv build` + `inv deploy`) against the commands a user would type.

Everything runs on a private copy of docker/ and app/ (TODO_DEPLOY_ROOT points at it), so
the one-line edits never touch the repository that other people work in, and the
settings/state (.env.secrets, .state/) are throw-away. Two scratch namespaces:
ours (deployed by the workflow) and the hand-run one (`kubectl apply -k` of a temp
overlay that references k8s/ and sets namespace, images, replicas and the test
cluster's postgres uid; the three Secrets are created once beforehand, untimed).

- warm: nothing changed. Ours = `inv build` + `inv deploy`; hand = two cached
  `docker build`s + `kubectl apply -k` + `kubectl rollout status` x2. Alternated.
- edit: a one-line comment change in the backend, until every backend pod runs the new
  image and /health answers through the Service. Ours = `inv build` + `inv deploy`;
  hand = `docker build` + `kubectl set image` + `kubectl rollout status`. Alternated.
- cold: new content (so no image exists under the new tags), a new namespace; each stage
  command timed separately: `inv build --no-cache`, `inv cluster`, `inv deploy`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, say, summary, target, write_result
from bench.stack import delete_namespace, kubectl, kubectl_json, scratch_environ

WARM_ROUNDS = int(os.environ.get("BENCH_WARM_ROUNDS", "5"))
EDIT_ROUNDS = int(os.environ.get("BENCH_EDIT_ROUNDS", "3"))
HAND_RELEASE = "todo-chatbot"  # the kustomize base's own names
EDIT_FILE = Path("app/backend/todo_api/__init__.py")

SCRATCH_TASKS = '''"""Scratch Invoke collection for the benchmark (the project's tasks.py lacks build/deploy)."""
from invoke import Collection

from todo_deploy.cli import build, cluster, deploy

ns = Collection()
for module in (build, cluster, deploy):
    for name in dir(module):
        obj = getattr(module, name)
        if getattr(obj, "__module__", "") == module.__name__ and hasattr(obj, "body"):
            ns.add_task(obj)
'''


class Workspace:
    """A private source copy + settings root, and the two namespaces."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="todo-bench-pipeline-"))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv", "*.egg-info")
        shutil.copytree(REPO / "docker", self.root / "docker", ignore=ignore)
        for app in ("backend", "frontend"):
            shutil.copytree(REPO / "app" / app, self.root / "app" / app, ignore=ignore)
        tag = secrets.token_hex(3)
        self.ours_ns = f"bench-ours-{tag}"
        self.hand_ns = f"bench-hand-{tag}"
        self.tasks_dir, self.tasks_source = self._tasks()
        self.original = (self.root / EDIT_FILE).read_text()
        self.edits = 0

    def _tasks(self) -> tuple[Path, str]:
        listing = subprocess.run(["inv", "-r", str(REPO), "--list"], capture_output=True,
                                 text=True, timeout=60, check=False).stdout
        names = {line.split()[0] for line in listing.splitlines()[2:] if line.strip()}
        if {"build", "deploy", "cluster"} <= names:
            return REPO, "the project's tasks.py"
        tasks_dir = self.root / "tasks"
        tasks_dir.mkdir()
        (tasks_dir / "tasks.py").write_text(SCRATCH_TASKS)
        return tasks_dir, "a scratch tasks.py collecting todo_deploy.cli.{build,cluster,deploy}"

    def env(self, namespace: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(scratch_environ(namespace, "todo", FRONTEND_REPLICAS="1"))
        env["TODO_DEPLOY_ROOT"] = str(self.root)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["DOCKER_BUILDKIT"] = "0"
        return env

    def inv(self, *args: str, timeout: float = 900) -> float:
        """Run one `inv` task the way a user does; returns its wall time."""
        started = time.perf_counter()
        result = subprocess.run(["inv", "-r", str(self.tasks_dir), *args], env=self.env(self.ours_ns),
                                capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"inv {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        return seconds

    def edit(self, component: str = "backend") -> None:
        """A one-line change (a comment) that changes the image content."""
        self.edits += 1
        path = self.root / "app" / component / ("todo_api" if component == "backend" else "todo_web") / "__init__.py"
        text = path.read_text().rstrip("\n").splitlines()
        marker = "# bench edit "
        text = [line for line in text if not line.startswith(marker)]
        path.write_text("\n".join([*text, f"{marker}{self.edits} {secrets.token_hex(4)}"]) + "\n")

    def gate(self, stage: str) -> dict[str, Any]:
        try:
            return json.loads((self.root / ".state" / f"{stage}.json").read_text())
        except (OSError, ValueError):
            return {}

    def close(self) -> None:
        for ns in (self.ours_ns, self.hand_ns):
            delete_namespace(ns, say)
        shutil.rmtree(self.root, ignore_errors=True)


# ---- the hand-run sequence ------------------------------------------------------------------


def _hand_build(ws: Workspace, component: str, tag: str) -> None:
    from todo_deploy.config import load_settings
    from todo_deploy.images import COMPONENTS, build_args

    settings = load_settings(ws.root, scratch_environ(ws.hand_ns, HAND_RELEASE)).settings
    spec = COMPONENTS[component]
    args = [f"--build-arg={k}={v}" for k, v in build_args(settings).items()]
    result = subprocess.run(
        ["docker", "build", "-q", "-f", str(ws.root / spec.dockerfile), "-t",
         f"{spec.image_name}:{tag}", *args, str(ws.root / spec.app_dir)],
        env=ws.env(ws.hand_ns), capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"docker build {component} failed: {result.stderr[-2000:]}")


def _overlay(ws: Workspace, tag: str) -> Path:
    from todo_deploy import render

    base = scratch_environ(ws.hand_ns, HAND_RELEASE)
    pg_repo, pg_tag = render.split_image(base["POSTGRES_IMAGE"])
    overlay = ws.root / "overlay"
    overlay.mkdir(exist_ok=True)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {ws.hand_ns}\n"
        f"resources:\n  - {os.path.relpath(REPO / 'k8s', overlay)}\n"
        "images:\n"
        f"  - {{name: todo-backend, newTag: \"{tag}\"}}\n"
        f"  - {{name: todo-frontend, newTag: \"{tag}\"}}\n"
        f"  - {{name: postgres, newName: {pg_repo}, newTag: \"{pg_tag}\"}}\n"
        "patches:\n  - path: replicas.yaml\n")
    (overlay / "replicas.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: todo-chatbot-frontend, namespace: todo}\n"
        "spec: {replicas: 1}\n")
    return overlay


def hand_setup(ws: Workspace, tag: str) -> Path:
    """Untimed: namespace + the three Secrets, then one full apply so the stack is up."""
    from todo_deploy import render
    from todo_deploy.config import load_settings

    overlay = _overlay(ws, tag)
    for component in ("backend", "frontend"):
        _hand_build(ws, component, tag)
    rendered = kubectl("kustomize", str(overlay)).stdout
    namespace_doc = rendered.split("\n---\n")[0] if "kind: Namespace" in rendered else ""
    if namespace_doc:
        kubectl("apply", "-f", "-", input_text=namespace_doc)
    else:
        kubectl("create", "namespace", ws.hand_ns)
    settings = load_settings(ws.root, scratch_environ(ws.hand_ns, HAND_RELEASE)).settings
    manifests = render.secret_manifests(settings)
    kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": manifests}))
    hand_apply(ws, overlay, timeout=400)
    return overlay


def hand_apply(ws: Workspace, overlay: Path, timeout: float = 300) -> None:
    kubectl("apply", "-k", str(overlay), timeout=timeout)
    for component in ("backend", "frontend"):
        kubectl("-n", ws.hand_ns, "rollout", "status", f"deployment/{HAND_RELEASE}-{component}",
                f"--timeout={int(timeout)}s", timeout=timeout + 30)


def answering(namespace: str, release: str, image: str, timeout: float = 120) -> None:
    """Every backend pod runs `image` and is Ready, and /health answers through the Service."""
    deadline = time.monotonic() + timeout
    svc = kubectl_json("-n", namespace, "get", "service", f"{release}-backend")
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/health"
    while time.monotonic() < deadline:
        pods = kubectl_json("-n", namespace, "get", "pods", "-l",
                            f"app.kubernetes.io/component=backend,app.kubernetes.io/instance={release}")
        live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        good = live and all(
            p["spec"]["containers"][0]["image"] == image
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p.get("status", {}).get("conditions", []))
            for p in live)
        if good:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"backend pods in {namespace} never all ran {image}")


def _ours_backend_image(ws: Workspace) -> str:
    from todo_deploy.artifacts import load_images

    return load_images(ws.root / ".state")["backend"].ref


# ---- the three measurements ----------------------------------------------------------------


def measure_warm(ws: Workspace, overlay: Path, tag: str, rounds: int) -> dict[str, Any]:
    ours, hand = [], []
    for i in range(rounds):
        for who in (("ours", "hand") if i % 2 == 0 else ("hand", "ours")):
            if who == "ours":
                started = time.perf_counter()
                ws.inv("build")
                ws.inv("deploy")
                ours.append(time.perf_counter() - started)
            else:
                started = time.perf_counter()
                for component in ("backend", "frontend"):
                    _hand_build(ws, component, tag)
                hand_apply(ws, overlay)
                hand.append(time.perf_counter() - started)
        say(f"warm round {i + 1}: ours {ours[-1]:.2f} s, hand {hand[-1]:.2f} s")
    return {"ours_s": [round(v, 3) for v in ours], "hand_s": [round(v, 3) for v in hand],
            "ours": summary(ours), "hand": summary(hand),
            "deploy_gate_changed": ws.gate("deploy").get("details", {}).get("changed")}


def measure_edit(ws: Workspace, rounds: int) -> dict[str, Any]:
    ours, hand = [], []
    for i in range(rounds):
        for who in (("ours", "hand") if i % 2 == 0 else ("hand", "ours")):
            ws.edit("backend")
            started = time.perf_counter()
            if who == "ours":
                ws.inv("build")
                ws.inv("deploy")
                answering(ws.ours_ns, "todo", _ours_backend_image(ws))
                ours.append(time.perf_counter() - started)
            else:
                tag = f"hand-edit-{ws.edits}"
                _hand_build(ws, "backend", tag)
                kubectl("-n", ws.hand_ns, "set", "image", f"deployment/{HAND_RELEASE}-backend",
                        f"backend=todo-backend:{tag}")
                kubectl("-n", ws.hand_ns, "rollout", "status",
                        f"deployment/{HAND_RELEASE}-backend", "--timeout=300s", timeout=330)
                answering(ws.hand_ns, HAND_RELEASE, f"todo-backend:{tag}")
                hand.append(time.perf_counter() - started)
        say(f"edit round {i + 1}: ours {ours[-1]:.2f} s, hand {hand[-1]:.2f} s")
    return {"ours_s": [round(v, 3) for v in ours], "hand_s": [round(v, 3) for v in hand],
            "ours": summary(ours), "hand": summary(hand),
            "ours_last_deploy_timings_s": ws.gate("deploy").get("details", {}).get("timings_s")}


def measure_cold(ws: Workspace) -> dict[str, Any]:
    """New content in both images (no image exists under the new tags), a new namespace."""
    ws.edit("backend")
    ws.edit("frontend")
    delete_namespace(ws.ours_ns, say)
    stages: dict[str, float] = {}
    stages["build (--no-cache)"] = ws.inv("build", "--no-cache", timeout=1800)
    stages["cluster"] = ws.inv("cluster")
    stages["deploy"] = ws.inv("deploy")
    deploy_details = ws.gate("deploy").get("details", {})
    build_details = ws.gate("build").get("details", {}).get("images", {})
    return {
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "total_s": round(sum(stages.values()), 2),
        "deploy_phases_s": deploy_details.get("timings_s"),
        "image_build_s": {k: v.get("seconds") for k, v in build_details.items()},
        "note": "`inv up` is not measured as one command: each stage command is timed "
                "separately (build, cluster, deploy are what `inv up` runs first).",
    }


def run() -> dict[str, Any]:
    ws = Workspace()
    try:
        say(f"workspace {ws.root}; ours in {ws.ours_ns}, hand-run in {ws.hand_ns}; "
            f"tasks from {ws.tasks_source}")
        hand_tag = "hand-" + secrets.token_hex(3)
        overlay = hand_setup(ws, hand_tag)
        ws.inv("build")
        ws.inv("cluster")
        ws.inv("deploy")
        say("both stacks are up; measuring warm no-change ...")
        warm = measure_warm(ws, overlay, hand_tag, WARM_ROUNDS)
        say("measuring edit-to-running ...")
        edit = measure_edit(ws, EDIT_ROUNDS)
        say("measuring cold ...")
        cold = measure_cold(ws)
        result = {
            "tasks": ws.tasks_source, "python": sys.version.split()[0],
            "warm_no_change": warm, "edit_to_running": edit, "cold": cold,
            "targets": [
                target("warm no-change: ours (median) <= hand-run (median)",
                       warm["ours"]["median"] / warm["hand"]["median"], 1.0, "x"),
                target("edit to running: ours (median) <= 1.2x hand-run (median)",
                       edit["ours"]["median"] / edit["hand"]["median"], 1.2, "x"),
            ],
        }
        write_result("pipeline", result)
        return result
    finally:
        ws.close()
