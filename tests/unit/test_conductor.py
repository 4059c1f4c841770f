"""The conductor (todo_deploy/pipeline/conductor.py) and its stage registry: every front
door runs the stages through them (issue 21: 1)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.config import LoadedSettings, Settings
from todo_deploy.gates import STAGES, Check, GateResult, Verdict
from todo_deploy.pipeline import conductor, registry

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_registry_holds_the_seven_stages_in_order_and_each_loads_its_module() -> None:
    assert [stage for stage, _ in registry.ORDER] == list(STAGES)
    for stage, _ in registry.ORDER:
        assert callable(registry.stage_module(stage).run), stage
    assert [s.stage for s in registry.steps(helm=False)] == [
        "build", "cluster", "deploy", "aiops", "verify", "docs"]
    assert [s.number for s in registry.steps(helm=True)] == [1, 2, 4, 5, 6, 7]


def test_inv_start_up_imports_neither_a_stage_nor_the_conductor() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import sys, tasks; print('\\n'.join(sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in shown if m.startswith("todo_deploy.stages")]
    assert "todo_deploy.pipeline.conductor" not in shown


FRONT_DOORS = sorted(str(p.relative_to(ROOT / "todo_deploy")) for p in [
    *(ROOT / "todo_deploy" / "cli").glob("*.py"), *(ROOT / "todo_deploy" / "mcp").glob("*.py"),
    ROOT / "todo_deploy" / "watch.py"])


@pytest.mark.parametrize("door", FRONT_DOORS)
def test_a_front_door_reaches_the_stages_only_through_the_pipeline(door: str) -> None:
    """Before: 28 imports of stage modules from cli/, mcp/ and watch.py; watch rebuilt the
    build gate from stages/build's private `_lint`, `_size_check` and `_last_lines`."""
    source = (ROOT / "todo_deploy" / door).read_text()
    assert not [m for m in imported_modules(ROOT / "todo_deploy" / door)
                if m.startswith("todo_deploy.stages")]
    assert "._lint" not in source and "._size_check" not in source and "._last_lines" not in source


@pytest.mark.parametrize("door", ["mcp/server.py", "mcp/tools.py"])
def test_the_mcp_server_imports_nothing_from_the_cli(door: str) -> None:
    """Before: mcp/server.py imported cli/__init__.py (an arrow back up)."""
    assert not [m for m in imported_modules(ROOT / "todo_deploy" / door)
                if m.startswith("todo_deploy.cli")]


def test_a_single_stage_task_runs_through_the_conductor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: `inv cluster` guarded, ran and recorded the stage itself."""
    from todo_deploy.cli import cluster as cluster_task

    ran: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(cluster_task, "load_or_exit", lambda: LoadedSettings(Settings(), root=tmp_path))
    monkeypatch.setattr(conductor, "run_stage",
                        lambda _loaded, stage, **options: ran.append((stage, options)))
    cluster_task.cluster(Context(), force=True)
    assert ran == [("cluster", {"force": True})]


def test_the_guard_refuses_a_stage_whose_predecessor_has_not_passed(tmp_path: Path) -> None:
    loaded = LoadedSettings(Settings(), root=tmp_path)
    with pytest.raises(Exit) as refused:
        conductor.run_stage(loaded, "docs")
    assert refused.value.code == 1
    assert refused.value.message.startswith("`inv docs` needs a passed deploy/helm gate first")

    class Refused(Exception):
        pass

    with pytest.raises(Refused, match="needs a passed cluster gate first"):
        conductor.run_recorded(loaded, "deploy", Refused)


def test_an_outside_world_failure_in_a_stage_stops_inv_up_at_that_stage_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As when `inv up` called each stage's task: the task turned it into one line."""
    engine_down = type("APIError", (Exception,), {"__module__": "docker.errors"})

    def build_fails(_loaded: Any, stage: str, **_options: Any) -> None:
        raise engine_down("engine gone")

    monkeypatch.setattr(conductor, "run_stage", build_fails)
    with pytest.raises(Exit) as stopped:
        conductor.up(LoadedSettings(Settings(), root=tmp_path), conductor.UpOptions(until="build"))
    assert stopped.value.message.startswith(
        "inv up stopped at stage 1/7 (containerize): Docker: engine gone\n")


def test_a_passed_stage_is_recorded_and_rendered_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loaded = LoadedSettings(Settings(), root=tmp_path)
    rendered: list[str] = []
    passed = GateResult("cluster", [Check("context", Verdict.PASS, "minikube")])
    monkeypatch.setattr(conductor, "render_gate", lambda result: rendered.append(result.stage))
    monkeypatch.setattr(conductor, "stage_module",
                        lambda _stage: type("M", (), {"run": staticmethod(lambda _l: passed)}))
    assert conductor.run_stage(loaded, "cluster", guarded=False) is passed
    assert rendered == ["cluster"]
    assert (loaded.state_dir / "cluster.json").is_file()


@pytest.mark.parametrize("provider", ["existing", "minikube"])
def test_the_raw_paths_records_and_the_gates_name_a_deployment_one_way(provider: str) -> None:
    """Before: kube.applied.scope_of said "/todo/todo-chatbot" where the gates said
    "(current context)/todo/todo-chatbot" (the current context, CLUSTER_PROVIDER=existing)."""
    from todo_deploy.gates import scopes_for
    from todo_deploy.kube import applied

    settings = Settings(cluster_provider=provider)  # type: ignore[call-arg]
    assert applied.scope_of(settings) == scopes_for(settings)["deploy"]
