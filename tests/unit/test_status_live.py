"""`inv status` and the MCP `status` tool check the recorded gates against the live
cluster (issue 22, item 3): the comparison on data, the read through a fake Kube."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from todo_deploy.cli import core
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict, save, scopes_for
from todo_deploy.kube import KubeError
from todo_deploy.mcp import tools
from todo_deploy.pipeline import status

BUILT = {"backend": "todo-backend:abc123", "frontend": "todo-frontend:def456"}


def settings_in(root: Path) -> LoadedSettings:
    return load_settings(root, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "st-unit",
                                "RELEASE_NAME": "todo-st", "BACKEND_REPLICAS": "2",
                                "FRONTEND_REPLICAS": "1"})


def deployment(component: str, image: str) -> dict[str, Any]:
    return {"metadata": {"name": f"todo-st-{component}",
                         "labels": {"app.kubernetes.io/component": component}},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}}}


def pod(component: str, image: str, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app.kubernetes.io/component": component}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"image": image}]},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def healthy() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    deployments = [deployment(c, ref) for c, ref in BUILT.items()]
    pods = [pod("backend", BUILT["backend"]), pod("backend", BUILT["backend"]),
            pod("frontend", BUILT["frontend"])]
    return deployments, pods


WANTED = {"backend": 2, "frontend": 1}


# ---- the comparison on data ---------------------------------------------------------------------


def test_a_cluster_that_matches_the_records_contradicts_nothing() -> None:
    assert status.contradictions(status.live_from(*healthy(), WANTED), BUILT) == []


def test_scaled_to_zero_by_hand_is_too_few_ready() -> None:
    deployments, pods = healthy()
    live = status.live_from(deployments, [p for p in pods if p["metadata"]["labels"]
                                          ["app.kubernetes.io/component"] != "backend"], WANTED)
    assert status.contradictions(live, BUILT) == ["backend 0/2 ready"]


def test_a_terminating_or_unready_pod_is_not_ready() -> None:
    deployments, _ = healthy()
    pods = [pod("backend", BUILT["backend"], deleting=True),
            pod("backend", BUILT["backend"], ready=False), pod("frontend", BUILT["frontend"])]
    assert status.contradictions(status.live_from(deployments, pods, WANTED), BUILT) == [
        "backend 0/2 ready"]


def test_an_image_set_by_hand_names_what_runs_and_what_was_built() -> None:
    deployments, pods = healthy()
    pods[0] = pod("backend", "todo-backend:hand")
    assert status.contradictions(status.live_from(deployments, pods, WANTED), BUILT) == [
        "backend runs image todo-backend:hand, built todo-backend:abc123"]


def test_without_pods_the_deployment_image_counts_and_a_missing_deployment_is_named() -> None:
    deployments = [deployment("backend", "todo-backend:hand")]
    live = status.live_from(deployments, [], WANTED)
    assert status.contradictions(live, BUILT) == [
        "backend 0/2 ready", "backend runs image todo-backend:hand, built todo-backend:abc123",
        "frontend Deployment missing"]


# ---- the table ------------------------------------------------------------------------------------


def record_a_passed_deployment(loaded: LoadedSettings) -> None:
    scopes = scopes_for(loaded.settings)
    ok = [Check("rollout complete", Verdict.PASS, "2/2 ready")]
    save(loaded.state_dir, GateResult("build", ok))
    save(loaded.state_dir, GateResult("deploy", ok, scope=scopes["deploy"], basis="b1",
                                      details={"images": BUILT}))
    save(loaded.state_dir, GateResult("verify", ok, scope=scopes["verify"], basis="b1"))
    save(loaded.state_dir, GateResult("aiops", [Check("doctor", Verdict.FAIL, "crash", "fix")],
                                      scope=scopes["aiops"], basis="b1"))


def scaled_to_zero(settings: Any) -> status.Live:
    deployments, pods = healthy()
    frontend_only = [p for p in pods if "frontend" in json.dumps(p)]
    return status.Live(status.live_from(deployments, frontend_only, WANTED))


def test_the_table_marks_each_recorded_pass_the_cluster_contradicts(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    record_a_passed_deployment(loaded)
    rows = {r.stage: r for r in status.build_table(loaded, read=scaled_to_zero).rows}
    assert rows["deploy"].verdict == "recorded pass; live: backend 0/2 ready"
    assert rows["verify"].verdict == "recorded pass; live: backend 0/2 ready"
    assert rows["deploy"].state == "pass"  # the record itself is unchanged
    assert rows["aiops"].verdict == "fail"  # a failed gate is not "contradicted"
    assert rows["build"].verdict == "pass"  # an image build is not a cluster fact
    assert rows["docs"].verdict == "not run"


def test_without_a_reachable_cluster_it_says_it_shows_records_only(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    record_a_passed_deployment(loaded)
    table = status.build_table(loaded, read=lambda s: status.Live(error="HTTP 0: refused"))
    assert table.compared == "records only: the cluster could not be read (HTTP 0: refused)"
    assert all(not r.live for r in table.rows)


def test_nothing_is_read_without_a_current_deployment(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)

    def must_not_read(settings: Any) -> status.Live:
        raise AssertionError("read the cluster with no deployment recorded")

    table = status.build_table(loaded, read=must_not_read)
    assert table.compared.startswith("records only")


def test_inv_status_prints_the_contradiction_and_json_carries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = settings_in(tmp_path)
    record_a_passed_deployment(loaded)
    from rich.console import Console

    # Wide enough that no cell folds, whatever the terminal (or xdist worker) says.
    monkeypatch.setattr("todo_deploy.console.console", lambda: Console(width=200))
    table = status.build_table(loaded, read=scaled_to_zero)
    core.print_status(table)
    printed = capsys.readouterr().out
    assert "recorded pass; live: backend 0/2 ready" in printed
    assert "compared with the live cluster (namespace st-unit): backend 0/2 ready" in printed
    data = core.status_json(table)
    assert data["deploy"]["live"] == ["backend 0/2 ready"] and data["deploy"]["passed"] is True
    assert data["docs"] is None


def test_the_mcp_status_tool_uses_the_same_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = settings_in(tmp_path)
    record_a_passed_deployment(loaded)
    monkeypatch.setattr(status, "read_live", scaled_to_zero)
    out = tools.status(loaded)
    gates = {g.stage: g for g in out.gates}
    assert gates["deploy"].state == "pass" and gates["deploy"].live == ["backend 0/2 ready"]
    assert gates["aiops"].state == "fail" and gates["aiops"].live == []
    assert out.compared.endswith("backend 0/2 ready")


# ---- the read ---------------------------------------------------------------------------------------


class FakeKube:
    def __init__(self, answers: dict[str, list[dict[str, Any]]] | None = None,
                 error: KubeError | None = None) -> None:
        self.answers, self.error, self.requests = answers or {}, error, []

    def path(self, api_version: str, kind: str, namespace: str) -> str:
        return f"{api_version}/{namespace}/{kind}"

    def request(self, method: str, path: str, *, query: Any, timeout: float) -> dict:
        self.requests.append((method, path, query, timeout))
        if self.error:
            raise self.error
        return {"items": self.answers.get(path.rsplit("/", 1)[1], [])}


def test_the_read_is_one_labelled_listing_of_deployments_and_one_of_pods(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    deployments, pods = healthy()
    kube = FakeKube({"Deployment": deployments, "Pod": pods[:1] + pods[2:]})
    live = status.read_live(loaded.settings, kube)  # type: ignore[arg-type]
    selector = "app.kubernetes.io/instance=todo-st,app.kubernetes.io/part-of=todo-chatbot"
    assert [(m, p) for m, p, _, _ in kube.requests] == [
        ("GET", "apps/v1/st-unit/Deployment"), ("GET", "v1/st-unit/Pod")]
    assert all(q == [("labelSelector", selector)] and t <= 5 for _, _, q, t in kube.requests)
    assert status.contradictions(live.components, BUILT) == ["backend 1/2 ready"]


def test_a_read_that_fails_becomes_the_reason_not_a_traceback(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    kube = FakeKube(error=KubeError(0, "connection refused\nmore"))
    live = status.read_live(loaded.settings, kube)  # type: ignore[arg-type]
    assert live.error == "connection refused" and live.components == {}


def test_a_helm_release_is_compared_with_the_build_it_installed_not_a_later_one(
    tmp_path: Path,
) -> None:
    import os

    from todo_deploy.artifacts import ImageRef, images_path, save_images

    loaded = settings_in(tmp_path)
    save_images(loaded.state_dir, {"backend": ImageRef("backend", "todo-backend", "abc123")})
    helm = GateResult("helm", [Check("release deployed", Verdict.PASS)])  # started after it
    assert status.deployed_images(loaded.state_dir, helm) == {"backend": BUILT["backend"]}
    later = datetime.fromisoformat(helm.finished_at).timestamp() + 5
    os.utime(images_path(loaded.state_dir), (later, later))  # `inv build` again, not deployed
    assert status.deployed_images(loaded.state_dir, helm) == {}
