"""Drill: PostgreSQL restarts mid-traffic.

While it is down, requests fail cleanly (503 with a message, never a hang past the
client timeout); the app pods do not restart; service resumes by itself within 30 s
of the database being back; no acknowledged write is lost.
"""

from __future__ import annotations

import time

import httpx
import pytest

from bench.stack import kubectl, kubectl_json
from tests.drills.traffic import Traffic
from tests.shared_release import SharedRelease

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(600)]
CLIENT_TIMEOUT = 10.0
RESUME_WITHIN_S = 30.0
OUTAGE_S = 25.0


def _postgres_ready(namespace: str, name: str, old_uid: str) -> bool:
    try:
        pod = kubectl_json("-n", namespace, "get", "pod", name)
    except RuntimeError:
        return False
    return pod["metadata"]["uid"] != old_uid and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", []))


def test_database_restart_fails_cleanly_and_recovers(shared_release: SharedRelease) -> None:
    stack = shared_release.stack
    ns = stack.namespace
    sts = f"{stack.release}-postgres"
    pg = f"{sts}-0"
    restarts_before = stack.restarts()
    old_uid = kubectl_json("-n", ns, "get", "pod", pg)["metadata"]["uid"]

    web = shared_release.web()
    traffic = Traffic(web, rate=8, timeout=CLIENT_TIMEOUT, tag="pg").start()
    try:
        time.sleep(3)
        # Down for longer than the backends' readiness allows (a restart on a loaded node
        # takes that long): they leave the Service and the frontend must still answer.
        killed_at = time.monotonic()
        kubectl("-n", ns, "scale", "statefulset", sts, "--replicas=0")
        time.sleep(OUTAGE_S)
        kubectl("-n", ns, "scale", "statefulset", sts, "--replicas=1")
        deadline = killed_at + 180
        while not _postgres_ready(ns, pg, old_uid) and time.monotonic() < deadline:
            time.sleep(0.5)
        db_back_at = time.monotonic()
        assert db_back_at < deadline, "PostgreSQL did not come back within 180 s"
        # Keep the traffic going until the app answers again (bounded).
        while time.monotonic() < db_back_at + RESUME_WITHIN_S + 10:
            recent = [e for e in traffic.events if e.started > db_back_at]
            if len([e for e in recent if e.ok]) >= 10:
                break
            time.sleep(0.5)
        time.sleep(2)
    finally:
        events = traffic.stop()

    failed = [e for e in events if not e.ok]
    for component in ("backend", "frontend"):  # shown when the drill fails
        print(kubectl("-n", ns, "logs", "--prefix", "--timestamps", "--tail=300",
                      "-l", f"app.kubernetes.io/component={component}", check=False).stdout)
    # Clean failures only: an HTTP answer, 503, with a readable message, within the timeout.
    unclean = [e for e in failed if e.status != 503 or not e.detail]
    assert not unclean, (
        f"database back {db_back_at - killed_at:.1f}s after the kill; requests (start after the kill):\n"
        + "\n".join(f"{e.kind} at {e.started - killed_at:+.1f}s status={e.status} after {e.seconds:.1f}s "
                    f"{e.detail or e.error}" for e in unclean[:20]))
    assert max((e.seconds for e in events), default=0) < CLIENT_TIMEOUT, "a request hung"

    # Service resumed by itself, soon after the database was back.
    after = [e for e in events if e.started > db_back_at]
    first_ok_after = next((e for e in after if e.ok), None)
    assert first_ok_after is not None, "the app never served a request after the restart"
    last_failure = max((e.started for e in failed), default=killed_at)
    assert last_failure - db_back_at <= RESUME_WITHIN_S, (
        f"failures continued {last_failure - db_back_at:.1f}s after the database was back")
    assert [e.ok for e in events[-10:]] == [True] * 10

    # The app pods did not restart (liveness does not depend on the database).
    assert stack.restarts() == restarts_before

    # No acknowledged write was lost.
    stored = set(web.all_titles())
    web.close()
    missing = [t for t in traffic.acknowledged_titles() if t not in stored]
    assert not missing, f"acknowledged but lost: {missing[:5]}"
    # And the backend reports ready again.
    assert httpx.get(f"{stack.service_url('backend')}/ready", timeout=5).status_code == 200
