"""Drill: a new backend image rolls out under steady traffic through the frontend.

Zero failed requests, and every task acknowledged during the rollout exists afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.drills.traffic import Traffic, describe_failures
from tests.shared_release import SharedRelease

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(600)]


def test_rolling_update_under_load_loses_nothing(shared_release: SharedRelease) -> None:
    stack = shared_release.stack
    old_pods = {p["metadata"]["name"] for p in stack.pods("backend")}
    assert len(old_pods) == 2, "the drill needs 2 backend replicas"
    old_image = stack.pods("backend")[0]["spec"]["containers"][0]["image"]

    stack.edit("backend")
    new_image = stack.build()["backend"].ref  # built before the traffic starts
    assert new_image != old_image

    web = shared_release.web()
    traffic = Traffic(web, rate=10, tag="roll").start()
    try:
        time.sleep(3)
        result = stack.deploy()  # the project's deploy stage: migration Job, then the rollout
        time.sleep(3)
    finally:
        events = traffic.stop()

    assert result.passed
    pods = stack.pods("backend")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {new_image}
    assert not old_pods & {p["metadata"]["name"] for p in pods}, "old backend pods remain"
    during = [e for e in events if e.kind == "create"]
    assert len(during) >= 20, f"too little traffic to mean anything ({len(events)} requests)"
    assert all(e.ok for e in events), describe_failures(events)

    stored = set(web.all_titles())
    missing = [t for t in traffic.acknowledged_titles() if t not in stored]
    web.close()
    assert not missing, f"{len(missing)} acknowledged tasks are gone: {missing[:5]}"
