"""The status table's live read against a real cluster (issue 22, item 3).

A scratch namespace of its own holds the release's backend Deployment scaled to 0
(as a hand `kubectl scale --replicas=0` leaves it: no pods, so nothing is pulled)
and no frontend; the read must see exactly that.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from todo_deploy.chart import values as chart_values
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict, save, scopes_for
from todo_deploy.pipeline import status


def kubectl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["kubectl", *args], input=stdin, text=True, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture
def scratch(kube_cluster: None, tmp_path: Path) -> Iterator[LoadedSettings]:
    namespace = f"status-test-{uuid.uuid4().hex[:8]}"
    loaded = load_settings(tmp_path, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": namespace,
                                      "RELEASE_NAME": "todo-st", "BACKEND_REPLICAS": "2"})
    labels = {**chart_values.app_labels(loaded.settings), "app.kubernetes.io/component": "backend"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "todo-st-backend", "namespace": namespace, "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "backend",
                                                       "image": "todo-backend:byhand00000"}]}}},
    }
    kubectl("create", "namespace", namespace)
    try:
        kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
        yield loaded
    finally:
        subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"],
                       capture_output=True, timeout=60, check=False)


def test_the_live_read_sees_a_backend_scaled_to_zero_and_a_missing_frontend(
    scratch: LoadedSettings,
) -> None:
    live = status.read_live(scratch.settings)
    assert live.error == ""
    assert status.contradictions(live.components, {"backend": "todo-backend:abc123abc123"}) == [
        "backend 0/2 ready",
        "backend runs image todo-backend:byhand00000, built todo-backend:abc123abc123",
        "frontend Deployment missing"]
    scopes = scopes_for(scratch.settings)
    save(scratch.state_dir, GateResult(
        "deploy", [Check("rollout complete", Verdict.PASS, "2/2 ready")], scope=scopes["deploy"],
        basis="b", details={"images": {"backend": "todo-backend:abc123abc123"}}))
    rows = {r.stage: r for r in status.build_table(scratch).rows}
    assert rows["deploy"].verdict.startswith("recorded pass; live: backend 0/2 ready, backend runs")
