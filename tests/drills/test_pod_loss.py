"""Drill: a backend pod is deleted mid-traffic (2 replicas): zero failed requests."""

from __future__ import annotations

import time

import pytest

from bench.stack import kubectl
from tests.drills.traffic import Traffic, describe_failures
from tests.shared_release import SharedRelease

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(600)]


def test_backend_pod_loss_under_load_fails_no_request(shared_release: SharedRelease) -> None:
    stack = shared_release.stack
    stack.wait_rollout("backend")
    victim = stack.pods("backend")[0]["metadata"]["name"]

    web = shared_release.web()
    traffic = Traffic(web, rate=10, tag="loss").start()
    try:
        time.sleep(3)
        kubectl("-n", stack.namespace, "delete", "pod", victim, "--wait=false")
        time.sleep(2)
        stack.wait_rollout("backend")  # the replacement becomes ready
        time.sleep(3)
    finally:
        events = traffic.stop()

    names = {p["metadata"]["name"] for p in stack.pods("backend")}
    assert victim not in names and len(names) == 2, names
    assert len(events) >= 50, f"too little traffic ({len(events)} requests)"
    assert all(e.ok for e in events), describe_failures(events)
    stored = set(web.all_titles())
    web.close()
    assert set(traffic.acknowledged_titles()) <= stored
