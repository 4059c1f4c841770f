"""`inv rollback` and `inv history`: plain words when there is nothing to roll back
to, descriptions in the history, one line (no traceback) when Helm cannot reach a
cluster. Against the strict Helm 3 stand-in (tests/fakes/helm_cli.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from todo_deploy import helm
from todo_deploy.chart import values as chart_values
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.stages import helm_deploy as helm_stage
from todo_deploy.stages.helm_deploy import rollback_target
from todo_deploy.tools.commands import Runner

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes"


def rev(number: int, status: str) -> dict[str, Any]:
    return {"revision": number, "status": status, "description": ""}


@pytest.mark.parametrize(("entries", "revision", "target", "why"), [
    ([], None, None, "no Helm release r in namespace ns: nothing to roll back"),
    ([rev(1, "deployed")], None, None,
     "r has only revision 1: there is no earlier revision to roll back to"),
    ([rev(1, "superseded"), rev(2, "deployed")], None, 1, ""),
    # Helm's own default (current - 1) would pick the failed upgrade 2.
    ([rev(1, "superseded"), rev(2, "failed"), rev(3, "deployed")], None, 1, ""),
    ([rev(1, "failed"), rev(2, "failed")], None, None,
     ("r has no earlier revision that ran successfully (revisions 1, 2, see `inv history`): "
     "nothing to roll back to")),
    ([rev(1, "superseded"), rev(2, "deployed")], 2, None,
     "revision 2 is the current revision of r: nothing to roll back"),
    ([rev(1, "superseded"), rev(2, "deployed")], 7, None,
     "r has no revision 7; its revisions are 1, 2 (see `inv history`)"),
    ([rev(1, "superseded"), rev(2, "failed"), rev(3, "deployed")], 2, 2, ""),
])
def test_rollback_target(entries: list[dict[str, Any]], revision: int | None,
                         target: int | None, why: str) -> None:
    assert rollback_target(entries, revision, "r", "ns") == (target, why)


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "bin").mkdir()
    # Run by this interpreter, not `#!/usr/bin/env python3` (a version manager's shim, if
    # any, costs ~0.05-0.1 s a call).
    (tmp_path / "bin" / "helm").write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKES / "helm3"))} "$@"\n')
    (tmp_path / "bin" / "helm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HELM_STANDIN_STATE", str(state))
    monkeypatch.delenv("HELM_STANDIN_UNREACHABLE", raising=False)
    return state


def loaded_settings(tmp_path: Path) -> LoadedSettings:
    return load_settings(tmp_path, {"RELEASE_NAME": "r", "NAMESPACE": "ns", "KUBE_CONTEXT": ""})


def test_one_revision_says_there_is_nothing_to_roll_back_to(tmp_path: Path, standin: Path) -> None:
    loaded = loaded_settings(tmp_path)
    engine = helm.engine(Runner(log=lambda _: None), "")
    assert engine.upgrade_install("r", chart_values.CHART_DIR, "ns", {}).ok
    result = helm_stage.rollback(loaded, engine=engine)
    assert not result.ok
    assert result.message == "r has only revision 1: there is no earlier revision to roll back to"
    assert (result.revision, result.status) == (1, "deployed")
    argvs = [json.loads(line)["argv"] for line in (standin / "calls.jsonl").read_text().splitlines()]
    assert not any("rollback" in argv for argv in argvs)  # never "release has no 0 version"


def test_rollback_skips_the_failed_revision_and_history_has_descriptions(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = loaded_settings(tmp_path)
    engine = helm.engine(Runner(log=lambda _: None), "")
    engine.upgrade_install("r", chart_values.CHART_DIR, "ns", {})
    monkeypatch.setenv("HELM_STANDIN_FAIL", "upgrade")
    engine.upgrade_install("r", chart_values.CHART_DIR, "ns", {}, rollback_on_failure=False)
    monkeypatch.delenv("HELM_STANDIN_FAIL")
    back = helm_stage.rollback(loaded, engine=engine)
    assert back.ok and back.revision == 3
    rows = [(e["revision"], e["status"], e["description"])
            for e in helm_stage.history(loaded, engine=engine)]
    assert rows == [(1, "superseded", "Install complete"),
                    (2, "failed", 'Upgrade "r" failed: context deadline exceeded'),
                    (3, "deployed", "Rollback to 1")]


def inv(tmp_path: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *argv],
        capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path,
        env={**os.environ, "TODO_DEPLOY_ROOT": str(tmp_path), **env},
    )


@pytest.mark.parametrize("engine", ["embedded", "helm 3"])
@pytest.mark.parametrize("task", ["history", "rollback"])
def test_no_cluster_is_one_line_and_exit_1(tmp_path: Path, standin: Path, engine: str,
                                           task: str) -> None:
    env = {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    if engine == "embedded":
        env["PATH"] = str(Path(sys.executable).parent)  # no helm binary
    else:
        env["HELM_STANDIN_UNREACHABLE"] = "1"
    done = inv(tmp_path, env, task)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert "Traceback" not in output
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "cluster unreachable" in lines[0].lower()
    assert lines[0].startswith(("Helm could not read release todo-chatbot",
                                "helm could not read release todo-chatbot"))


def test_helm_unavailable_anywhere_is_an_outside_world_failure() -> None:
    """Any task that meets HelmUnavailable (e.g. `inv down`) ends in one line, not a traceback."""
    from todo_deploy.pipeline.failures import outside_world_failure

    message = outside_world_failure(helm.HelmUnavailable("helm uninstall r failed: boom"))
    assert message is not None and message.startswith("Helm: helm uninstall r failed: boom\n")
