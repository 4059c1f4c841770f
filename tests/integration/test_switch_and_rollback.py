"""Raw <-> Helm switches that keep serving (Helm adopts the live objects, the raw path
takes them back), and raw deploys that roll back: a failed `inv deploy` puts back the
last passing objects, `inv rollback` works without Helm."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Self

import httpx
import pytest

from bench.client import WebClient
from tests.integration.conftest import poll_until
from todo_deploy.artifacts import ImageRef
from todo_deploy.kube import Kube
from todo_deploy.release import rollback as raw_rollback
from todo_deploy.stages import helm_deploy as helm_stage
from todo_deploy.stages import raw_deploy as raw_stage

pytestmark = pytest.mark.cluster

FAILED_DEPLOY_TIMEOUT_S = 45


class Poller:
    """A signed-up user through the frontend Service every ~50 ms: the task list (the
    frontend, the backend and the database) and the page, in turn. Served: 2xx/3xx."""

    def __init__(self, base: str) -> None:
        self.web = WebClient(base, timeout=5)
        # Before the measured window: a new Service's ClusterIP may refuse for a moment
        # after its endpoints are ready (the proxy's rules lag).
        poll_until(self._answers, bool, 30, 0.5)
        self.web.signup()
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _answers(self) -> bool:
        try:
            return self.web.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            what = "GET /api/tasks" if n % 2 else "GET /"
            try:
                response = (self.web.list_tasks(limit=5) if n % 2 else self.web.http.get("/"))
                status = response.status_code
            except Exception as exc:  # noqa: BLE001 - a refused/reset connection is a failure
                self.failures.append(f"{time.strftime('%X')} {what}: {exc!r}")
            else:
                if 200 <= status < 400:
                    self.ok += 1
                else:
                    self.failures.append(f"{time.strftime('%X')} {what}: HTTP {status}")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.web.close()


def _frontend(kube: Kube, s: Any) -> str:
    svc = kube.get("v1", "Service", f"{s.release}-frontend", s.namespace)
    assert svc is not None
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def _pods(kube: Kube, s: Any) -> set[str]:
    return {p["metadata"]["uid"] for p in kube.list("v1", "Pod", s.namespace,
            f"app.kubernetes.io/instance={s.release}")
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "database"}


def test_raw_to_helm_to_raw_serves_every_request(scratch: Callable[[], Any]) -> None:
    s = scratch()
    first = raw_stage.run(s.settings(), log=print)
    assert first.passed, [(c.name, c.evidence) for c in first.failures]
    kube = Kube("")
    database_pods = _pods(kube, s)
    said: list[str] = []

    def log(line: str) -> None:
        said.append(line)
        print(line)

    with Poller(_frontend(kube, s)) as poller:
        started = time.monotonic()
        to_helm = helm_stage.run(s.settings(), timeout_s=180, log=log)
        to_helm_s = time.monotonic() - started
        assert to_helm.passed, [(c.name, c.evidence) for c in to_helm.failures]
        served_on_helm = poller.ok
        started = time.monotonic()
        back = raw_stage.run(s.settings(), log=log)
        back_s = time.monotonic() - started
        assert back.passed, [(c.name, c.evidence) for c in back.failures]
    print(f"raw -> Helm {to_helm_s:.1f}s, Helm -> raw {back_s:.1f}s: {poller.ok} requests "
          f"served, {len(poller.failures)} failed")
    # Before: the raw objects were deleted first ("removing 16 raw-deployed objects").
    assert any(line.startswith("helm: adopting ") for line in said), said
    assert not any("removing" in line for line in said), said
    assert to_helm.details["adopted_raw_objects"], to_helm.details
    assert served_on_helm > 20 and poller.ok > served_on_helm
    assert poller.failures == [], poller.failures[:10]
    # The database pod was never restarted by either switch.
    assert _pods(kube, s) == database_pods
    # Helm -> raw: the release record is gone (not uninstalled: the objects served on).
    assert not raw_stage.helm_release_present(kube, s.settings().settings)
    marked = [o["metadata"]["name"] for o in kube.list("apps/v1", "Deployment", s.namespace)
              if "meta.helm.sh/release-name" in (o["metadata"].get("annotations") or {})]
    assert marked == []


def test_failed_raw_deploy_restores_the_last_passing_and_rollback_goes_back(
    scratch: Callable[[], Any],
    built_images: dict[str, ImageRef],
    changed_backend: ImageRef,
    broken_backend: ImageRef,
) -> None:
    s = scratch()
    kube = Kube("")

    def backend_image() -> str:
        dep = kube.get("apps/v1", "Deployment", f"{s.release}-backend", s.namespace)
        assert dep is not None
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    nothing = raw_rollback.rollback(s.settings(), log=print)
    assert not nothing.ok and nothing.message.startswith("nothing to roll back to"), nothing
    assert raw_stage.run(s.settings(), log=print).passed
    s.set_images({**built_images, "backend": changed_backend})
    assert raw_stage.run(s.settings(), log=print).passed
    assert backend_image() == changed_backend.ref

    s.set_images({**built_images, "backend": broken_backend})
    said: list[str] = []
    failed = raw_stage.run(s.settings(), timeout_s=FAILED_DEPLOY_TIMEOUT_S, log=said.append)
    print("\n".join(said))
    assert not failed.passed
    evidence = failed.failures[0].evidence
    assert "rolled back to the last passing deploy" in evidence, evidence
    assert changed_backend.ref in evidence
    assert backend_image() == changed_backend.ref
    dep = kube.get("apps/v1", "Deployment", f"{s.release}-backend", s.namespace) or {}
    assert dep.get("status", {}).get("readyReplicas") == 1

    back = raw_rollback.rollback(s.settings(), log=print)
    assert back.ok, back.message
    assert "previous passing deploy" in back.message
    assert backend_image() == built_images["backend"].ref
    again = raw_rollback.rollback(s.settings(), log=print)
    assert not again.ok and again.message.startswith("nothing to roll back to"), again
