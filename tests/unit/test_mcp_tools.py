"""The tool adapters' own rules: verify stays read-only unless allowed, bounds, the call log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict, save, scopes_for
from todo_deploy.mcp import calls, tools


def deployed(root: Path) -> LoadedSettings:
    loaded = load_settings(root, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "h4-unit"})
    scope = scopes_for(loaded.settings)["deploy"]
    save(loaded.state_dir, GateResult("deploy", [Check("ok", Verdict.PASS)], scope=scope,
                                      basis="b1"))
    return loaded


@pytest.fixture
def verify_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    from todo_deploy.stages.verify import stage

    seen: list[dict[str, Any]] = []

    def run(loaded: LoadedSettings, *, only: str | None = None,
            skip: str | None = None) -> GateResult:
        seen.append({"only": only, "skip": skip})
        return GateResult("verify", [Check("signup", Verdict.PASS, "201")],
                          details={"checks_selected": ["signup"]})

    monkeypatch.setattr(stage, "run", run)
    return seen


def test_read_only_verify_leaves_out_the_pod_deleting_checks(
        tmp_path: Path, verify_runs: list[dict[str, Any]]) -> None:
    out = tools.verify(deployed(tmp_path), skip=["cleanup"])
    assert out.left_out_read_only == ["self-healing", "persistence"]
    assert verify_runs == [{"only": None, "skip": "cleanup,self-healing,persistence"}]
    assert out.passed and out.checks[0].name == "signup"


def test_read_only_verify_refuses_to_run_a_pod_deleting_check_by_name(
        tmp_path: Path, verify_runs: list[dict[str, Any]]) -> None:
    with pytest.raises(tools.Refused, match="--allow-changes"):
        tools.verify(deployed(tmp_path), only=["self-healing"])
    assert verify_runs == []


def test_allowed_verify_runs_what_was_asked_and_records_the_gate(
        tmp_path: Path, verify_runs: list[dict[str, Any]]) -> None:
    loaded = deployed(tmp_path)
    tools.verify(loaded, only=["persistence"], allow_changes=True)
    assert verify_runs == [{"only": "persistence", "skip": None}]
    from todo_deploy.gates import standing

    gate, _ = standing(loaded.state_dir, "verify", scopes_for(loaded.settings)["verify"])
    assert gate is not None and gate.basis == "b1"


def test_verify_without_a_deployment_is_refused_with_the_command(
        tmp_path: Path, verify_runs: list[dict[str, Any]]) -> None:
    loaded = load_settings(tmp_path, {"CLUSTER_PROVIDER": "existing"})
    with pytest.raises(tools.Refused, match="inv deploy"):
        tools.verify(loaded, only=["signup"])
    with pytest.raises(tools.Failed, match="unknown check"):
        tools.verify(loaded, only=["bogus"])
    assert verify_runs == []


@pytest.mark.parametrize("replicas", [0, 21])
def test_scale_is_bounded(tmp_path: Path, replicas: int) -> None:
    with pytest.raises(tools.Failed, match="between 1 and 20"):
        tools.scale(deployed(tmp_path), "backend", replicas)


def test_call_log_masks_and_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "MAX_BYTES", 600)
    secrets = ["hunter2-secret"]
    for i in range(6):
        calls.append(tmp_path, "logs", {"component": "backend", "note": f"{i} hunter2-secret",
                                        "OPENAI_API_KEY": "plain"}, "ok", 0.1, "x", secrets)
    current = tmp_path / calls.FILE_NAME
    assert current.stat().st_size <= 600
    assert (tmp_path / "mcp-calls.1.jsonl").exists()
    entry = calls.read(tmp_path)[-1]
    assert entry["arguments"] == {"component": "backend", "note": "5 ***",
                                  "OPENAI_API_KEY": "***"}
