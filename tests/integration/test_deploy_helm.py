"""`inv deploy --helm` on the real test cluster: install + gate + helm test, then
an upgrade to an image that cannot start is rolled back while the old pods serve."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from todo_deploy.artifacts import ImageRef
from todo_deploy.kube import Kube
from todo_deploy.stages import helm_deploy as helm_stage
from todo_deploy.stages import teardown

pytestmark = pytest.mark.cluster

FAILED_UPGRADE_TIMEOUT_S = 40  # was 120: the whole deadline is waited out


def test_helm_install_gate_then_failed_upgrade_rolls_back(
    scratch: Callable[[], Any],
    built_images: dict[str, ImageRef],
    broken_backend: ImageRef,
    svc_url: Callable[..., str],
) -> None:
    s = scratch()
    said: list[str] = []
    result = helm_stage.run(s.settings(), log=said.append)
    assert result.passed, [(c.name, c.evidence) for c in result.failures]
    assert any(line.startswith("Helm engine: ") for line in said)
    checks = {c.name for c in result.checks}
    assert {"release status deployed", "helm test passed", "Deployments available",
            "pods run exactly the built images"} <= checks
    print(f"helm install: {result.details['duration_s']}s")

    kube = Kube("")
    backend = svc_url(kube, s.namespace, f"{s.release}-backend", 8000) + "/health"
    old_pods = {p["metadata"]["uid"] for p in kube.list(
        "v1", "Pod", s.namespace, f"app.kubernetes.io/instance={s.release},"
        "app.kubernetes.io/component=backend")}
    failures: list[str] = []
    ok = [0]
    stop = threading.Event()

    def poll() -> None:
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(backend, timeout=5) as response:
                    ok[0] += response.status == 200
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))
            time.sleep(0.1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    s.set_images({**built_images, "backend": broken_backend})
    said.clear()
    # A deadline long enough for the new pod to crash once and leave its log line; its
    # full length is waited out (Helm's --wait knows no crash loop), so it is kept short.
    upgrade = helm_stage.run(s.settings(), timeout_s=FAILED_UPGRADE_TIMEOUT_S, log=said.append)
    stop.set()
    thread.join()
    assert not upgrade.passed
    failure = upgrade.failures[0]
    assert failure.name == "helm upgrade --install"
    assert "rolled back" in failure.evidence
    # why: the crashing container's own log line
    diagnosis = upgrade.details["diagnosis"]
    assert "broken on purpose" in diagnosis, f"{failure.evidence}\n{diagnosis}\n" + "\n".join(said)
    # The history with its descriptions (the suite's one failed-and-rolled-back upgrade:
    # test_helm_engine's own was the same scenario on stand-in images).
    history = helm_stage.history(s.settings())
    assert [h["status"] for h in history] == ["superseded", "failed", "deployed"], history
    assert history[0]["description"] == "Install complete"
    assert history[1]["description"].startswith(f'Upgrade "{s.release}" failed'), history[1]
    assert history[2]["description"] == "Rollback to 1"
    # `inv rollback`'s default target skips the failed revision 2 (Helm's current-1 would pick it).
    assert helm_stage.rollback_target(history, None, s.release, s.namespace) == (1, "")
    new_pods = {p["metadata"]["uid"] for p in kube.list(
        "v1", "Pod", s.namespace, f"app.kubernetes.io/instance={s.release},"
        "app.kubernetes.io/component=backend") if not p["metadata"].get("deletionTimestamp")}
    assert old_pods <= new_pods, "the old backend pods did not keep serving"
    assert ok[0] > 10 and failures == [], failures[:5]

    gone = teardown.run(s.settings(), yes=True, log=print)
    assert gone.helm_uninstalled and gone.clean, gone.message
