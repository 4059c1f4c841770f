"""The MCP server in-process, through the official client: tool list and schemas,
read-only refusals, the call log, gates shown as `inv status` shows them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict, save, scopes_for
from todo_deploy.mcp import calls, tools
from todo_deploy.mcp.server import build

SECRET_KEY = "sk-test-0123456789abcdef"


def settings_in(root: Path, **env: str) -> LoadedSettings:
    base = {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "h4-unit", "RELEASE_NAME": "todo-unit",
            "OPENAI_API_KEY": SECRET_KEY}
    return load_settings(root, {**base, **env})


def session(loaded: LoadedSettings, steps: list[tuple[str, dict[str, Any]]],
            allow_changes: bool = False) -> tuple[list[str], list[Any]]:
    async def go() -> tuple[list[str], list[Any]]:
        async with Client(build(loaded, allow_changes=allow_changes)) as client:
            listed = await client.list_tools()
            results = [await client.call_tool(name, args) for name, args in steps]
            return [t.name for t in listed.tools], results

    return asyncio.run(go())


def text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_lists_every_tool_with_typed_inputs_and_output_schemas(tmp_path: Path) -> None:
    async def go() -> Any:
        async with Client(build(settings_in(tmp_path))) as client:
            return (await client.list_tools()).tools

    listed = {t.name: t for t in asyncio.run(go())}
    assert set(listed) == set(tools.READ_ONLY_TOOLS) | set(tools.CHANGE_TOOLS)
    assert all(t.output_schema for t in listed.values())
    replicas = listed["scale"].input_schema["properties"]["replicas"]
    assert (replicas["minimum"], replicas["maximum"]) == (1, 20)
    component = listed["logs"].input_schema["properties"]["component"]
    assert {"backend", "frontend", "database", "migrate"} <= set(json.dumps(component).split('"'))
    assert listed["status"].annotations.read_only_hint is True
    assert listed["deploy"].annotations.read_only_hint is False


def test_changes_are_refused_with_how_to_allow_them_and_logged(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    _, (deploy, scale, rollback) = session(loaded, [
        ("deploy", {"mode": "helm"}), ("scale", {"component": "backend", "replicas": 3}),
        ("rollback", {}),
    ])
    for result in (deploy, scale, rollback):
        assert result.is_error
        assert "--allow-changes" in text(result) and "refused" in text(result)
    logged = calls.read(loaded.state_dir)
    assert [(e["tool"], e["outcome"]) for e in logged] == [
        ("deploy", "refused"), ("scale", "refused"), ("rollback", "refused")]
    assert logged[1]["arguments"] == {"component": "backend", "replicas": 3}


def test_out_of_bounds_replicas_are_rejected_before_the_tool_runs_and_logged(
        tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    _, (result,) = session(loaded, [("scale", {"component": "backend", "replicas": 21})],
                           allow_changes=True)
    assert result.is_error and "less than or equal to 20" in text(result)
    (entry,) = calls.read(loaded.state_dir)
    assert entry["tool"] == "scale" and entry["outcome"] == "error"


def fake_doctor(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The doctor's findings without a cluster; returns the namespaces it was asked about."""
    from todo_deploy.doctor import Finding
    from todo_deploy.stages.aiops import stage

    asked: list[str] = []
    findings = [
        Finding("readiness probe failing", "Pod/todo-unit-backend-1",
                "container backend: readiness probe /ready answered 503", "start the database"),
        Finding("CrashLoopBackOff", "Pod/todo-unit-backend-1", "exit code 1", "read the logs"),
        Finding("Service without endpoints", "Service/todo-unit-backend",
                "selector matches 1 pod(s) but none is Ready", "fix the pod's readiness"),
    ]

    def doctor_checks(settings: Any, namespace: str,
                      images: Any = None) -> tuple[list[Check], list[Finding]]:
        asked.append(namespace)
        assert images is not None  # the recorded build, for "image differs" findings
        return [f.check() for f in findings], findings

    monkeypatch.setattr(stage, "doctor_checks", doctor_checks)
    return asked


def test_doctor_groups_findings_per_object_with_evidence_and_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_doctor(monkeypatch)
    loaded = settings_in(tmp_path)
    _, (result,) = session(loaded, [("doctor", {})])
    out = result.structured_content
    assert asked == ["h4-unit"] and out["healthy"] is False
    assert [g["object"] for g in out["groups"]] == ["Pod/todo-unit-backend-1",
                                                   "Service/todo-unit-backend"]
    first = out["groups"][0]["findings"]
    assert [f["kind"] for f in first] == ["readiness probe failing", "CrashLoopBackOff"]
    assert first[0]["fix"] == "start the database"
    assert "3 problem(s) in 2 object(s)" in out["summary"]


def test_config_masks_secrets_in_the_output_and_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_doctor(monkeypatch)
    loaded = settings_in(tmp_path)
    _, (result, _) = session(loaded, [
        ("config", {}), ("doctor", {"namespace": f"x-{SECRET_KEY}"})])
    rows = {r["key"]: r for r in result.structured_content["settings"]}
    assert rows["OPENAI_API_KEY"]["value"] == "***"
    assert rows["NAMESPACE"]["value"] == "h4-unit"
    assert SECRET_KEY not in json.dumps(result.structured_content)
    log_text = (loaded.state_dir / calls.FILE_NAME).read_text()
    assert SECRET_KEY not in log_text
    assert '"namespace": "x-***"' in log_text


def _gate(stage: str, ok: bool, scope: str, basis: str = "b1") -> GateResult:
    check = Check("rollout complete", Verdict.PASS if ok else Verdict.FAIL,
                  "2/2 ready" if ok else "0/2 ready", "" if ok else "`inv logs backend`")
    return GateResult(stage, [check], scope=scope, basis=basis)


def test_status_shows_each_gate_as_it_stands_for_this_deployment(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    scopes = scopes_for(loaded.settings)
    save(loaded.state_dir, _gate("deploy", True, scopes["deploy"]))
    save(loaded.state_dir, _gate("verify", False, scopes["verify"]))
    save(loaded.state_dir, _gate("docs", True, scopes["docs"], basis="an-older-deployment"))
    save(loaded.state_dir, _gate("cluster", True, "another-context"))
    _, (result,) = session(loaded, [("status", {})])
    gates = {g["stage"]: g for g in result.structured_content["gates"]}
    assert result.structured_content["target"] == scopes["deploy"]
    assert gates["deploy"]["state"] == "pass"
    assert gates["verify"]["state"] == "fail"
    assert gates["verify"]["checks"][0]["fix"] == "`inv logs backend`"
    assert gates["docs"]["state"] == "not current" and "stale" in gates["docs"]["why"]
    assert gates["cluster"]["state"] == "not current"
    assert gates["build"]["state"] == "not run"
    (entry,) = calls.read(loaded.state_dir)
    assert "deploy: pass" in entry["summary"] and "verify: fail" in entry["summary"]
