"""The helm CLI engine against strict stand-ins for Helm 3 (v3.21.4) and Helm 4
(v4.2.4) that accept exactly the real flags (tests/fakes/helm_cli.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_deploy import helm
from todo_deploy.chart import values as chart_values
from todo_deploy.tools.commands import Runner

FAKES = Path(__file__).resolve().parents[1] / "fakes"
CHART = str(chart_values.CHART_DIR)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def install_helm(tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch, major: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "helm"
    if link.exists() or link.is_symlink():
        link.unlink()
    # Run by this interpreter, not `#!/usr/bin/env python3`, which can be a version manager's
    # shim (pyenv's: a bash script, ~0.05-0.1 s more on each of the hundreds of calls).
    link.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKES / f"helm{major}"))} "$@"\n')
    link.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HELM_STANDIN_STATE", str(state))
    for knob in ("HELM_STANDIN_FAIL", "HELM_STANDIN_UNREACHABLE"):
        monkeypatch.delenv(knob, raising=False)
    return link


def calls(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]


def helm_run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["helm", *argv], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)


# ---- the stand-ins are as strict as the real binaries ------------------------------------------


@pytest.mark.parametrize(("major", "flag"), [("3", "--rollback-on-failure"), ("3", "--force-replace"),
                                             ("4", "--recreate-pods"), ("4", "--bogus")])
def test_stand_in_rejects_flags_the_real_helm_lacks(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch, major: str, flag: str
) -> None:
    install_helm(tmp_path, state, monkeypatch, major)
    done = helm_run("upgrade", "--install", "r", CHART, flag)
    assert done.returncode == 1
    assert done.stderr == f"Error: unknown flag: {flag}\n"
    assert done.stdout == ""


def test_stand_in_checks_values_like_pflag(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_helm(tmp_path, state, monkeypatch, "3")
    # Helm 3's --wait is a bool: a Helm 4 strategy is not a value it takes.
    done = helm_run("rollback", "r", "--wait=watcher")
    assert done.returncode == 1
    assert 'invalid argument "watcher" for "--wait" flag: strconv.ParseBool' in done.stderr
    assert "missing unit in duration" in helm_run("test", "r", "--timeout", "300").stderr
    assert helm_run("status", "r", "-o", "yml").stderr.startswith(
        'Error: invalid argument "yml" for "-o, --output" flag')
    assert helm_run("-x").stderr == "Error: unknown shorthand flag: 'x' in -x\n"
    install_helm(tmp_path, state, monkeypatch, "4")
    assert "invalid wait input" in helm_run("uninstall", "r", "--wait=forever").stderr
    deprecated = helm_run("upgrade", "--install", "r", CHART, "--atomic")
    assert "Flag --atomic has been deprecated, use --rollback-on-failure instead" in deprecated.stderr


# ---- the engine picks the flags of the helm it finds ----------------------------------------------

EXPECTED = {
    "3": {"name": "helm CLI v3.21.4", "wait": "--wait", "on_failure": "--atomic", "force": []},
    "4": {"name": "helm CLI v4.2.4", "wait": "--wait=watcher", "on_failure": "--rollback-on-failure",
          "force": ["--force-conflicts"]},  # adopted raw objects: todo-deploy's fields
}


@pytest.mark.parametrize("major", ["3", "4"])
def test_cli_engine_full_cycle_against_each_major(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch, major: str
) -> None:
    install_helm(tmp_path, state, monkeypatch, major)
    logged: list[str] = []
    engine = helm.engine(Runner(log=logged.append), "minikube")
    want = EXPECTED[major]
    assert isinstance(engine, helm.CliHelm) and engine.name == want["name"]
    assert logged[0] == "$ helm version --template '{{.Version}}'"

    values = {"backend": {"replicaCount": 3, "image": {"tag": "abc"}}}
    first = engine.upgrade_install("r", chart_values.CHART_DIR, "ns", values, timeout_s=120)
    assert first.ok, first.message
    assert (first.revision, first.status) == (1, "deployed")
    second = engine.upgrade_install("r", chart_values.CHART_DIR, "ns", values, timeout_s=120,
                                    rollback_on_failure=False)
    assert second.ok and second.revision == 2

    broken = {"backend": {"image": {"tag": "does-not-exist"}}}
    failed = engine.upgrade_install("r", chart_values.CHART_DIR, "ns", broken, timeout_s=30,
                                    rollback_on_failure=False)
    assert not failed.ok
    assert "UPGRADE FAILED" in failed.message
    assert (failed.revision, failed.status) == (3, "failed")
    back = engine.rollback("r", "ns", 2)
    assert back.ok, back.message
    assert (back.revision, back.status) == (4, "deployed")

    history = engine.history("r", "ns")
    assert [(h["revision"], h["status"], h["description"]) for h in history] == [
        (1, "superseded", "Install complete"),
        (2, "superseded", "Upgrade complete"),
        (3, "failed", 'Upgrade "r" failed: context deadline exceeded'),
        (4, "deployed", "Rollback to 2"),
    ]
    status = engine.status("r", "ns")
    assert status is not None
    assert (status["revision"], status["status"], status["chart"]) == (4, "deployed",
                                                                       "todo-chatbot-0.1.0")
    ok, output = engine.test("r", "ns", 60)
    assert ok and "Phase:          Succeeded" in output and "POD LOGS" in output
    objects = engine.template(chart_values.CHART_DIR, "r", "ns", values, kube_version="1.30.0",
                              api_versions=["policy/v1", "autoscaling/v2"])
    assert objects[0]["data"]["kubeVersion"] == "1.30.0"
    assert objects[0]["data"]["apiVersions"] == "policy/v1,autoscaling/v2"
    assert json.loads(objects[0]["data"]["values"]) == values
    assert engine.lint(chart_values.CHART_DIR, values)[0]
    engine.uninstall("r", "ns")
    assert engine.status("r", "ns") is None and engine.history("r", "ns") == []
    engine.uninstall("r", "ns")  # nothing to remove: no error, no uninstall issued

    argvs = [c["argv"][1:] for c in calls(state)]
    base = ["--kube-context", "minikube", "--namespace", "ns"]
    assert argvs[1] == [*base, "upgrade", "--install", "r", CHART, "--timeout", "120s", "-f", "-",
                        want["wait"], "--wait-for-jobs", want["on_failure"], *want["force"]]
    assert yaml.safe_load(calls(state)[1]["stdin"]) == values  # values on stdin, never a file
    assert [*base, "rollback", "r", "2", want["wait"], "--timeout", "300s"] in argvs
    assert [*base, "test", "r", "--timeout", "60s", "--logs"] in argvs
    assert [*base, "history", "r", "-o", "json"] in argvs
    assert ["template", "r", CHART, "--namespace", "ns", "-f", "-", "--kube-version", "1.30.0",
            "--api-versions", "policy/v1", "--api-versions", "autoscaling/v2"] in argvs
    uninstalls = [a for a in argvs if "uninstall" in a]
    assert uninstalls == [[*base, "uninstall", "r", want["wait"], "--timeout", "300s"]]


@pytest.mark.parametrize("major", ["3", "4"])
def test_failed_first_install_is_removed_by_helm(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch, major: str
) -> None:
    install_helm(tmp_path, state, monkeypatch, major)
    engine = helm.engine(Runner(log=lambda _: None), "")
    monkeypatch.setenv("HELM_STANDIN_FAIL", "upgrade")
    failed = engine.upgrade_install("r", chart_values.CHART_DIR, "ns", {}, timeout_s=30)
    assert not failed.ok
    setting = "atomic" if major == "3" else "rollback-on-failure"
    assert f"has been uninstalled due to {setting} being set" in failed.message
    assert engine.status("r", "ns") is None


def test_helm_4_flags_fail_on_helm_3(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reason the version is read first."""
    install_helm(tmp_path, state, monkeypatch, "3")
    as_four = helm.CliHelm(Runner(log=lambda _: None), version="v4.2.4")
    result = as_four.upgrade_install("r", chart_values.CHART_DIR, "ns", {}, timeout_s=30)
    # pflag stops at the first flag it cannot take: Helm 3's --wait is a bool.
    assert not result.ok
    assert 'invalid argument "watcher" for "--wait" flag: strconv.ParseBool' in result.message
    install_helm(tmp_path, state, monkeypatch, "4")
    with_three = helm.CliHelm(Runner(log=lambda _: None), version="v3.21.4")
    with_three.upgrade_install("r", chart_values.CHART_DIR, "ns", {}, timeout_s=30)
    # Helm 4 still takes --atomic, but only as a deprecated alias.
    assert helm_run("upgrade", "--install", "r", CHART, "--atomic").stderr.startswith(
        "Flag --atomic has been deprecated")


def test_unreachable_cluster_is_one_line_not_a_traceback(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_helm(tmp_path, state, monkeypatch, "3")
    monkeypatch.setenv("HELM_STANDIN_UNREACHABLE", "1")
    engine = helm.engine(Runner(log=lambda _: None), "")
    with pytest.raises(helm.HelmUnavailable) as caught:
        engine.history("r", "ns")
    assert str(caught.value) == (
        'helm could not read release r: Error: Kubernetes cluster unreachable: Get '
        '"https://127.0.0.1:6443/version": dial tcp 127.0.0.1:6443: connect: connection refused')


@pytest.mark.parametrize(("script", "why"), [
    ("print('v5.0.0', end='')", "helm v5.0.0 is neither Helm 3 nor 4"),
    ("import sys; print('Error: boom', file=sys.stderr); sys.exit(1)",
     "`helm version` failed: Error: boom"),
])
def test_unknown_helm_falls_back_to_the_embedded_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, why: str
) -> None:
    import sys

    fake = tmp_path / "bin" / "helm"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    logged: list[str] = []
    engine = helm.engine(Runner(log=logged.append), "")
    assert engine.name == helm.SDK_NAME
    assert logged[-1] == f"{why}; using the {helm.SDK_NAME} instead"


@pytest.mark.parametrize(("text", "parsed"), [
    ("v3.21.4", (3, 21, 4)), ("v4.2.4+g3900f43", (4, 2, 4)), ("3.8.0", (3, 8, 0)), ("", None),
])
def test_parse_version(text: str, parsed: tuple[int, int, int] | None) -> None:
    assert helm.parse_version(text) == parsed
