"""Issue 22 item 1: a missing minikube/kind is named before any build, with what works
here instead (the current kube context), and no URL or command is broken across the
lines of a gate table's cell."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit
from rich.console import Console

from todo_deploy import console as console_module
from todo_deploy.config import LoadedSettings, Settings
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.stages import cluster


def nothing_installed(name: str) -> str | None:
    return None


def test_missing_minikube_names_the_current_context_as_what_works() -> None:
    check = cluster.missing_provider(Settings(), nothing_installed, lambda: "kind-work")
    assert check is not None and check.verdict is Verdict.FAIL
    assert check.evidence == "the minikube binary is not on PATH"
    assert check.fix == (f"{cluster.MINIKUBE_INSTALL}; or set `CLUSTER_PROVIDER=existing` "
                         "to use your current context 'kind-work'")


def test_missing_minikube_names_kind_when_kind_is_installed() -> None:
    check = cluster.missing_provider(
        Settings(), lambda name: "/usr/bin/kind" if name == "kind" else None, lambda: "")
    assert check is not None
    assert check.fix == f"{cluster.MINIKUBE_INSTALL}; or set `CLUSTER_PROVIDER=kind` (kind is installed)"


def test_a_provider_that_needs_no_binary_is_never_missing() -> None:
    settings = Settings(cluster_provider="existing")  # type: ignore[arg-type]
    assert cluster.missing_provider(settings, nothing_installed, lambda: "x") is None
    assert cluster.missing_provider(Settings(), lambda n: f"/bin/{n}", lambda: "x") is None


def narrow_console(monkeypatch: pytest.MonkeyPatch, width: int = 80) -> io.StringIO:
    out = io.StringIO()
    narrow = Console(file=out, width=width, highlight=False, soft_wrap=False)
    monkeypatch.setattr(console_module, "console", lambda: narrow)
    return out


def test_a_fix_with_a_url_or_command_is_printed_whole_below_an_80_column_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the fix column folded the URL ("https://minikube.sig" / "s.k8s.io/...")."""
    out = narrow_console(monkeypatch)
    fix = (f"{cluster.MINIKUBE_INSTALL}; or set `CLUSTER_PROVIDER=existing` to use your "
           "current context 'a-rather-long-context-name-for-a-cluster'")
    console_module.render_gate(GateResult("cluster", [
        Check("minikube profile todo-chatbot", Verdict.FAIL, "the minikube binary is not on PATH", fix),
        Check("plain", Verdict.FAIL, "no literal in its hint", "wait a minute and retry"),
    ]))
    lines = out.getvalue().splitlines()
    for literal in ("https://minikube.sigs.k8s.io/docs/start/", "`CLUSTER_PROVIDER=existing`"):
        assert any(literal in line for line in lines), (literal, out.getvalue())
    assert f"fix 1 (minikube profile todo-chatbot): {fix}" in lines
    assert any("see fix 1 below" in line for line in lines)
    assert "fix 2" not in out.getvalue()  # a hint of prose only stays in its cell


def fake_loaded(tmp_path: Path) -> LoadedSettings:
    return LoadedSettings(Settings(), root=tmp_path)


def test_inv_up_stops_before_building_when_minikube_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: the build ran (65 s) and only the cluster stage found minikube missing."""
    from todo_deploy.cli import up as up_module
    from todo_deploy.pipeline import conductor

    narrow_console(monkeypatch)
    built: list[bool] = []
    monkeypatch.setattr(up_module, "load_or_exit", lambda: fake_loaded(tmp_path))
    monkeypatch.setattr(shutil, "which", nothing_installed)
    monkeypatch.setattr(cluster, "current_context", lambda: "docker-desktop")
    monkeypatch.setattr(conductor, "run_stage", lambda _l, stage, **k: built.append(stage == "build"))
    with pytest.raises(Exit) as stopped:
        up_module.up(Context())
    assert built == []
    message = stopped.value.message
    assert message.startswith("inv up stopped before the build: stage 2/7 (local cluster)")
    assert "set `CLUSTER_PROVIDER=existing` to use your current context 'docker-desktop'" in message
    assert re.search(r"https://minikube\.sigs\.k8s\.io/docs/start/", message)


def test_inv_up_until_build_does_not_need_the_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from todo_deploy.cli import up as up_module
    from todo_deploy.pipeline import conductor

    narrow_console(monkeypatch)
    built: list[bool] = []
    monkeypatch.setattr(up_module, "load_or_exit", lambda: fake_loaded(tmp_path))
    monkeypatch.setattr(shutil, "which", nothing_installed)
    monkeypatch.setattr(conductor, "run_stage", lambda _l, stage, **k: built.append(stage == "build"))
    up_module.up(Context(), until="build")
    assert built == [True]


def test_an_evidence_whose_url_the_table_would_break_is_printed_whole_below(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = narrow_console(monkeypatch)
    url = "http://todo-chatbot-frontend.todo.svc.cluster.local:3000/api/session?probe=1"
    console_module.render_gate(GateResult("verify", [
        Check("access", Verdict.FAIL, f"GET {url} timed out after 30 s", "wait and retry"),
        Check("short", Verdict.PASS, "nodeport http://10.0.0.2:30080: HTTP 200"),
    ]))
    lines = out.getvalue().splitlines()
    assert f"evidence 1 (access): GET {url} timed out after 30 s" in lines
    assert any("see evidence 1 below" in line for line in lines)
    assert any("http://10.0.0.2:30080" in line for line in lines)  # fits: stays in its cell
    assert "evidence 2" not in out.getvalue()


def test_markup_like_text_in_a_check_is_printed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    out = narrow_console(monkeypatch)
    console_module.render_gate(GateResult("build", [Check("x", Verdict.FAIL, "[bold]list[1][/]", "")]))
    assert "[bold]list[1][/]" in out.getvalue()
