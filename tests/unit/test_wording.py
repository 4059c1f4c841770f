"""Issue 22 item 9: messages that said something untrue or said it twice."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from todo_deploy import gates
from todo_deploy.access import REQUESTED
from todo_deploy.cli.open import describe
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.timing import Timeline


def test_a_phase_that_raised_is_not_printed_as_done() -> None:
    """Before: "base image python:3.11-slim present" was printed right after its pull failed."""
    printed: list[str] = []
    timeline = Timeline(printed.append)
    with pytest.raises(RuntimeError), timeline.phase("base image python:3.11-slim present"):
        raise RuntimeError("pull failed")
    assert printed[-1].endswith("] base image python:3.11-slim present: failed")
    with timeline.phase("apply app"):
        pass
    assert printed[-1].endswith("] apply app")


def test_inv_open_forward_does_not_name_another_tasks_flag() -> None:
    """Before: `inv open --forward` answered "... no direct way: port-forward requested
    (--access port-forward)", a flag of `inv verify`, and no direct way was even tried."""
    app = SimpleNamespace(kind="port-forward", pid=42, detail=REQUESTED)
    text = describe(app)
    assert text == "port-forward asked for, pid 42, kept until `inv open --stop` or `inv down`"
    fallback = describe(SimpleNamespace(kind="port-forward", pid=42, detail="Service x not found"))
    assert fallback.endswith("; no direct way: Service x not found")


def refusal_after(tmp_path: Path, fix: str) -> str:
    failed = GateResult("build", [Check("base image pulled", Verdict.FAIL, "pull failed", fix)])
    gates.save(tmp_path, failed)
    message = gates.refusal(tmp_path, "cluster")
    assert message is not None
    return message


def test_a_refusal_does_not_repeat_the_rerun_its_hint_already_gives(tmp_path: Path) -> None:
    """Before: "Fix: ..., then `inv build` Then re-run `inv build`."."""
    message = refusal_after(tmp_path, "check the network, then `inv build`")
    assert message.endswith("Fix: check the network, then `inv build`")
    assert message.count("inv build") == 1


def test_a_refusal_adds_the_rerun_when_the_hint_does_not_say_it(tmp_path: Path) -> None:
    message = refusal_after(tmp_path, "start Docker.")
    assert message.endswith("Fix: start Docker. Then re-run `inv build`.")


def test_the_doctor_scales_back_to_the_configured_replicas() -> None:
    """Before: `kubectl scale deployment … --replicas=1` with BACKEND_REPLICAS=2."""
    from tests.unit.test_doctor_rules import NOW, replicaset, service, workload
    from todo_deploy import doctor
    from todo_deploy.config import Settings
    from todo_deploy.doctor.model import Snapshot, Target

    backend = workload("Deployment", "backend", 0)
    snapshot = Snapshot("todo", NOW, services=[service("backend")], deployments=[backend],
                        replicasets=[replicaset(backend)])
    target = Target.of(Settings(backend_replicas=2))  # type: ignore[call-arg]
    [cause] = [f for f in doctor.diagnose(snapshot, target) if f.kind == "scaled to 0"]
    assert cause.fix.endswith("scale deployment todo-chatbot-backend --replicas=2`")


def test_a_reapply_after_a_status_update_is_not_called_a_write() -> None:
    """Before: after verify deleted pods (a status update of their Deployment), the deploy
    said "(written in the cluster since the last deploy)", as if someone had edited it."""
    from todo_deploy.kube import applied

    obj = {"kind": "Deployment", "metadata": {"name": "todo-chatbot-backend", "namespace": "todo"}}
    key = applied.key_of(obj)
    recorded = {key: applied.Entry(applied.manifest_hash(obj), "100", "apps/v1")}
    why = applied.why_applied(obj, recorded, {key: "107"})
    assert why == ("Deployment/todo-chatbot-backend (its resourceVersion changed since the last "
                   "deploy: an edit, or only its status)")
    assert "written" not in why


def test_inv_list_shows_each_tasks_summary_whole() -> None:
    """`inv --list` shows a docstring's first line only. Before: lint's ended "(1.30 and
    the newest" and watch's "rebuild only the changed image and"."""
    import inspect

    from tasks import ns

    cut = [name for name in ns.task_names
           if not inspect.cleandoc(ns[name].__doc__ or "").split("\n", 1)[0].endswith(".")]
    assert cut == []


def test_the_report_shows_this_runs_docs_checks_not_the_previous_gate(tmp_path: Path) -> None:
    """Before: the report's docs section was the previous run's gate ("graphviz `dot` is not
    on PATH") beside the SVG this run had just drawn."""
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.stages.docs.stage import report_gates

    loaded = LoadedSettings(Settings(), root=tmp_path)
    old = GateResult("docs", [Check("diagram written", Verdict.WARN, "graphviz `dot` is not on PATH")],
                     scope=gates.scopes_for(loaded.settings)["docs"])
    gates.save(loaded.state_dir, old)
    now = [Check("diagram written", Verdict.PASS, "docs/architecture.svg (4100 bytes)")]
    shown = report_gates(loaded, now)["docs"]
    assert shown is not None and shown.checks == now


def test_a_missing_ai_tool_is_said_once_by_the_gate_not_again_as_a_log_line(tmp_path: Path) -> None:
    """Before: "kubectl-ai: skipped, kubectl-ai (...) not found: ..." was logged, and the gate
    table below it said the same line again."""
    from todo_deploy.config import Settings
    from todo_deploy.stages.aiops.adapters import TOOLS
    from todo_deploy.stages.aiops.stage import tool_checks

    absent = SimpleNamespace(available=lambda: False)
    logged: list[str] = []
    checks, _ = tool_checks({name: absent for name in TOOLS}, "health", Settings(),  # type: ignore[misc]
                            namespace="todo", allow_changes=False, replicas=None,
                            root=tmp_path, install_kagent=True, log=logged.append)
    assert checks and all(c.verdict is Verdict.SKIP and "not found" in c.evidence for c in checks)
    assert [line for line in logged if "not found" in line] == []
