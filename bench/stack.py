"""A throw-away deployment of the app in a scratch namespace, through the project's own stages.

`Stack.up()` builds (or reuses) the images with `todo_deploy.images.ensure_built` and
deploys them with `todo_deploy.stages.raw_deploy.run` (CLUSTER_PROVIDER=existing, ClusterIP
services reachable from the host on the test cluster). `Stack.down()` deletes the
namespace and hands the database's hostPath volume back to the pool: the test cluster
has no provisioner and its PersistentVolumes are `Retain`, so a released volume would
otherwise stay unusable (and keep the old database's files).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings
    from todo_deploy.gates import GateResult

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def kubectl(*args: str, timeout: float = 120, check: bool = True,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=timeout,
                            input=input_text, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.strip()[:2000]}")
    return result


def kubectl_json(*args: str, timeout: float = 60) -> Any:
    return json.loads(kubectl(*args, "-o", "json", timeout=timeout).stdout)


def base_images() -> dict[str, str]:
    return {
        "PYTHON_BASE_IMAGE": os.environ.get("PYTHON_BASE_IMAGE")
        or os.environ.get("LOCALCLUSTER_PYTHON_IMAGE") or "localcluster/python:3.11-slim",
        "POSTGRES_IMAGE": os.environ.get("POSTGRES_IMAGE")
        or os.environ.get("LOCALCLUSTER_HUB_POSTGRES_IMAGE") or "postgres:15",
    }


def scratch_environ(namespace: str, release: str, **overrides: str) -> dict[str, str]:
    """Settings for a scratch deployment: existing cluster, ClusterIP, offline agent."""
    env = {
        "CLUSTER_PROVIDER": "existing",
        "NAMESPACE": namespace,
        "RELEASE_NAME": release,
        "BACKEND_REPLICAS": "2",
        "FRONTEND_REPLICAS": "1",
        "FRONTEND_SERVICE_TYPE": "ClusterIP",
        "LLM_PROVIDER": "offline",
        "DEPLOY_TIMEOUT_SECONDS": "300",
        **base_images(),
    }
    if os.environ.get("KUBE_CONTEXT"):
        env["KUBE_CONTEXT"] = os.environ["KUBE_CONTEXT"]
    env.update(overrides)
    return env


def release_volumes(namespace: str, log: Log = _quiet) -> list[str]:
    """Make the PVs that were bound to `namespace`'s claims Available again, emptied."""
    recycled = []
    for pv in kubectl_json("get", "pv").get("items", []):
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("namespace") != namespace:
            continue
        name = pv["metadata"]["name"]
        path = (pv["spec"].get("hostPath") or {}).get("path")
        if not path or pv["spec"].get("persistentVolumeReclaimPolicy") != "Retain":
            continue
        if pv.get("status", {}).get("phase") == "Bound":
            continue  # still in use (the namespace is not gone yet)
        target = Path(path)
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        kubectl("patch", "pv", name, "--type=json",
                "-p", '[{"op":"remove","path":"/spec/claimRef"}]', check=False)
        recycled.append(name)
        log(f"volume {name} emptied and made Available again")
    return recycled


def delete_namespace(namespace: str, log: Log = _quiet, timeout: float = 180, wait: bool = True) -> None:
    """Delete the namespace; with `wait`, until it is gone (and, on a cluster with a pool of
    pre-made volumes, its volume is Available again). Without, it goes in the background."""
    if not wait:
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false",
                timeout=60, check=False)
        return
    kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true",
            f"--timeout={int(timeout)}s", timeout=timeout + 30, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if kubectl("get", "namespace", namespace, check=False).returncode != 0:
            break
        time.sleep(1)
    # The PV turns Released a moment after its claim is gone.
    for _ in range(20):
        if release_volumes(namespace, log) or not _bound_to(namespace):
            break
        time.sleep(1)
    release_volumes(namespace, log)


def _bound_to(namespace: str) -> bool:
    return any((pv["spec"].get("claimRef") or {}).get("namespace") == namespace
               for pv in kubectl_json("get", "pv").get("items", []))


@dataclass
class Stack:
    """One deployment of the app in its own namespace."""

    namespace: str
    release: str = "todo"
    overrides: dict[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="todo-stack-")))
    log: Log = _quiet
    last_deploy: GateResult | None = None

    @classmethod
    def scratch(cls, prefix: str, log: Log = _quiet, **overrides: str) -> Stack:
        return cls(f"{prefix}-{secrets.token_hex(3)}", overrides=overrides, log=log)

    @property
    def environ(self) -> dict[str, str]:
        return scratch_environ(self.namespace, self.release, **self.overrides)

    def loaded(self, **extra: str) -> LoadedSettings:
        from todo_deploy.config import load_settings

        return load_settings(self.root, {**self.environ, **extra})

    def build(self) -> dict[str, Any]:
        from todo_deploy import images

        outcomes = images.ensure_built(self.loaded(), log=self.log)
        return {name: o.image for name, o in outcomes.items()}

    def deploy(self, **extra: str) -> GateResult:
        from todo_deploy.stages import raw_deploy

        result = raw_deploy.run(self.loaded(**extra), log=self.log)
        self.last_deploy = result
        if not result.passed:
            failed = "; ".join(f"{c.name}: {c.evidence}" for c in result.failures)
            raise RuntimeError(f"deploy into {self.namespace} failed: {failed}\n"
                               f"{result.details.get('diagnosis', '')}")
        return result

    def private_source(self) -> None:
        """Build from a private copy of docker/ and app/ (so `edit()` never touches the repo)."""
        from bench.common import REPO

        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv", "*.egg-info")
        if not (self.root / "docker").exists():
            shutil.copytree(REPO / "docker", self.root / "docker", ignore=ignore)
            shutil.copytree(REPO / "app", self.root / "app", ignore=ignore)  # and common/

    def edit(self, component: str = "backend") -> None:
        """A one-line comment change in the private copy: the next build gets a new tag."""
        package = "todo_api" if component == "backend" else "todo_web"
        path = self.root / "app" / component / package / "__init__.py"
        if not path.exists():
            raise RuntimeError("call private_source() before edit()")
        marker = "# stack edit "
        lines = [line for line in path.read_text().splitlines() if not line.startswith(marker)]
        path.write_text("\n".join([*lines, marker + secrets.token_hex(4)]) + "\n")

    def up(self) -> Stack:
        self.build()
        self.deploy()
        return self

    def down(self, wait: bool = True) -> None:
        delete_namespace(self.namespace, self.log, wait=wait)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- addresses and objects ---------------------------------------------------------

    def name(self, component: str) -> str:
        return f"{self.release}-{component}"

    def service_url(self, component: str) -> str:
        svc = kubectl_json("-n", self.namespace, "get", "service", self.name(component))
        port = svc["spec"]["ports"][0]["port"]
        return f"http://{svc['spec']['clusterIP']}:{port}"

    def pods(self, component: str) -> list[dict[str, Any]]:
        items = kubectl_json("-n", self.namespace, "get", "pods", "-l",
                             f"app.kubernetes.io/component={component},"
                             f"app.kubernetes.io/instance={self.release}").get("items", [])
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def restarts(self, components: Sequence[str] = ("backend", "frontend")) -> dict[str, int]:
        out = {}
        for component in components:
            for pod in self.pods(component):
                statuses = pod.get("status", {}).get("containerStatuses") or []
                out[pod["metadata"]["name"]] = sum(s.get("restartCount", 0) for s in statuses)
        return out

    def wait_rollout(self, component: str, timeout: float = 180) -> None:
        kubectl("-n", self.namespace, "rollout", "status",
                f"deployment/{self.name(component)}", f"--timeout={int(timeout)}s",
                timeout=timeout + 30)
