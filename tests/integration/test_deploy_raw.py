"""`inv deploy` (the chart rendered in-process, applied without Helm) on the real
test cluster: the gate, the chart's objects (egress policies included), a fast
no-change re-raw_deploy, a backend-only rollout without a failed frontend request,
and `inv down` leaving nothing behind."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.gates import Verdict
from todo_deploy.kube import Kube
from todo_deploy.stages import raw_deploy, teardown

pytestmark = pytest.mark.cluster


def pods_by_component(kube: Kube, namespace: str, release: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pod in kube.list("v1", "Pod", namespace, f"app.kubernetes.io/instance={release}"):
        if pod.get("status", {}).get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            continue
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component", "")
        out.setdefault(component, set()).add(pod["metadata"]["uid"])
    return out


def answers(url: str, timeout_s: float = 30) -> bool:
    """The URL answers 200 (a Service's node rules follow its endpoints by a moment:
    kube-proxy's sync; until then its ClusterIP refuses)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except Exception:  # noqa: BLE001, S110 - not yet: try again
            pass
        time.sleep(0.1)
    return False


class Poller(threading.Thread):
    """GETs a URL back to back until stopped; counts failures, each with its time since
    the poller started (bounded in time)."""

    def __init__(self, url: str, limit_s: float = 300) -> None:
        super().__init__(daemon=True)
        self.url, self.limit_s = url, limit_s
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        deadline = started + self.limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{time.monotonic() - started:.2f}s HTTP {response.status}")
            except Exception as exc:  # noqa: BLE001 - any failure counts
                self.failures.append(f"{time.monotonic() - started:.2f}s {exc!r}")
            time.sleep(0.05)


def test_raw_deploy_noop_rollout_and_down(
    scratch: Callable[[], Any],
    built_images: dict[str, ImageRef],
    changed_backend: ImageRef,
    svc_url: Callable[..., str],
) -> None:
    s = scratch()
    loaded = s.settings()
    quiet: Callable[[str], None] = lambda _: None

    first = raw_deploy.run(loaded, log=print)
    assert first.passed, [(c.name, c.evidence) for c in first.failures]
    names = {c.name for c in first.checks}
    assert {"Deployments available", "migration Job succeeded", "every Service has endpoints",
            "no container restarted", "pods run exactly the built images"} <= names
    print(f"first deploy: {first.details['duration_s']}s, timings {first.details['timings_s']}")

    kube = Kube(loaded.settings.context_name)
    # Exactly the chart's objects are live, under the chart's names.
    rendered = manifests.render_manifests(loaded.settings, built_images)
    for obj in rendered:
        meta = obj["metadata"]
        live = kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace", ""))
        assert live is not None, f"{obj['kind']}/{meta['name']} missing"
    policies = {p["metadata"]["name"]: p["spec"]["policyTypes"]
                for p in kube.list("networking.k8s.io/v1", "NetworkPolicy", s.namespace)}
    assert policies[f"{s.release}-backend"] == ["Ingress", "Egress"]
    assert policies[f"{s.release}-postgres"] == ["Ingress", "Egress"]
    before = pods_by_component(kube, s.namespace, s.release)
    assert before.get("backend") and before.get("frontend") and before.get("database")

    # No change: fast, no waiting, no pod replaced.
    started = time.monotonic()
    again = raw_deploy.run(loaded, log=quiet)
    noop_s = time.monotonic() - started
    print(f"no-change deploy: {noop_s:.2f}s")
    assert again.passed
    assert noop_s < 2.0, f"no-change deploy took {noop_s:.2f}s"
    assert pods_by_component(kube, s.namespace, s.release) == before

    # A one-line backend change: only backend pods roll; the frontend never fails.
    url = svc_url(kube, s.namespace, f"{s.release}-frontend", 80) + "/"
    # The first deploy is done when its pods are ready; the frontend answers on its ClusterIP
    # a moment later. From then on, not one request may fail while the backend rolls.
    assert answers(url), f"the frontend never answered on {url}"
    poller = Poller(url)
    poller.start()
    time.sleep(1)
    s.set_images({**built_images, "backend": changed_backend})
    started = time.monotonic()
    rolled = raw_deploy.run(s.settings(), log=print)
    rollout_s = time.monotonic() - started
    time.sleep(1)
    poller.stop.set()
    poller.join()
    print(f"backend rollout deploy: {rollout_s:.1f}s; frontend requests ok={poller.ok} "
          f"failed={len(poller.failures)}")
    assert rolled.passed, [(c.name, c.evidence) for c in rolled.failures]
    after = pods_by_component(kube, s.namespace, s.release)
    assert after["frontend"] == before["frontend"], "frontend pods were replaced"
    assert after["database"] == before["database"], "database pod was replaced"
    assert after["backend"].isdisjoint(before["backend"]), "backend pods were not replaced"
    assert poller.ok > 10 and poller.failures == [], poller.failures[:5]
    image_check = next(c for c in rolled.checks if c.name == "pods run exactly the built images")
    assert image_check.verdict is Verdict.PASS
    # the old migration Job (named after the old backend tag) was pruned
    jobs = [j["metadata"]["name"] for j in kube.list("batch/v1", "Job", s.namespace)]
    expected = manifests.migration_job(manifests.render_manifests(
        s.settings().settings, {**built_images, "backend": changed_backend}))
    assert jobs == [expected]

    # inv down: nothing of the app remains (data kept without --yes, then removed with it).
    kept = teardown.run(s.settings(), log=print)
    assert kept.kept_pvcs and kept.clean, kept.message
    gone = teardown.run(s.settings(), yes=True, log=print)
    assert gone.clean, gone.message
    leftovers = kube.list_everything(s.namespace, f"app.kubernetes.io/instance={s.release}")
    assert [o["kind"] + "/" + o["metadata"]["name"] for o in leftovers if o["kind"] != "Event"] == []


def test_deploy_without_build_fails_clearly(scratch: Callable[[], Any]) -> None:
    s = scratch()
    (s.root / ".state" / "images.json").unlink()
    result = raw_deploy.run(s.settings(), log=lambda _: None)
    assert not result.passed
    assert "inv build" in result.failures[0].fix


def test_failed_migration_stops_before_the_deployments(
    scratch: Callable[[], Any], built_images: dict[str, ImageRef], unmigratable_backend: ImageRef
) -> None:
    s = scratch()
    s.set_images({**built_images, "backend": unmigratable_backend})
    # backoffLimit 0: the Job fails at its first attempt (3 retries wait ~70-90 s of back-off)
    started = time.monotonic()
    result = raw_deploy.run(s.settings(DEPLOY_TIMEOUT_SECONDS="90", MIGRATION_BACKOFF_LIMIT="0"),
                        log=print)
    print(f"failed migration deploy: {time.monotonic() - started:.1f}s")
    assert not result.passed
    failure = result.failures[0]
    assert "migration Job" in failure.evidence
    # ours (one Failed pod) or the Job controller's condition, whichever is seen first
    assert ("backoffLimit 0" in failure.evidence
            or "BackoffLimitExceeded" in failure.evidence), failure.evidence
    assert "log lines" in result.details["diagnosis"]  # the Job's logs are shown
    kube = Kube("")
    assert kube.list("apps/v1", "Deployment", s.namespace) == []
