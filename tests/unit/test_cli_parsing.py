"""The command line holds no surprise: `-h` is help on every task, `inv aiops
[playbook]` parses every form, and a missing cluster or kubeconfig is one line
with the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke import Collection
from invoke.exceptions import ParseError
from invoke.parser import Argument, Parser, ParserContext

from tasks import ns
from todo_deploy.cli.aiops import aiops
from todo_deploy.cli.optional_positional import token_for_positional
from todo_deploy.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTING_KEYS = {name.upper() for name in Settings.model_fields}


def inv(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTING_KEYS}
    clean.update(TODO_DEPLOY_ROOT=str(root), COLUMNS="200", NO_COLOR="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, env=clean, capture_output=True,
        text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("name", sorted(ns.task_names))
def test_dash_h_is_help_on_every_task(name: str, tmp_path: Path) -> None:
    done = inv([name, "-h"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"Usage: inv[oke] [--core-opts] {name}"), done.stdout[:300]
    assert not (tmp_path / ".state").exists()  # nothing ran


def test_no_task_flag_takes_dash_h() -> None:
    for name in ns.task_names:
        for argument in ns[name].get_arguments():
            assert "h" not in argument.names, f"inv {name}: -h is --{argument.name}"


def parse(monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    monkeypatch.setattr(sys, "argv", ["inv", *argv])
    contexts = Collection(aiops, ns["verify"]).to_contexts()
    return Parser(contexts=contexts).parse_argv(list(argv))[0].as_kwargs


def test_aiops_takes_an_optional_playbook(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse(monkeypatch, "aiops")["playbook"] == ""
    assert parse(monkeypatch, "aiops", "doctor")["playbook"] == "doctor"
    scale = parse(monkeypatch, "aiops", "--replicas", "3", "--allow-changes", "scale")
    assert (scale["playbook"], scale["replicas"], scale["allow_changes"]) == ("scale", 3, True)
    assert parse(monkeypatch, "aiops", "resources", "-n", "other")["namespace"] == "other"
    assert parse(monkeypatch, "aiops", "--namespace", "doctor")["playbook"] == ""
    assert parse(monkeypatch, "aiops", "bogus")["playbook"] == "bogus"


def test_aiops_then_another_task_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["inv", "aiops", "verify"])
    contexts = Collection(aiops, ns["verify"]).to_contexts()
    result = Parser(contexts=contexts).parse_argv(["aiops", "verify"])
    assert [c.name for c in result] == ["aiops", "verify"]
    assert result[0].as_kwargs["playbook"] == ""


def test_token_for_positional_skips_flags_and_their_values() -> None:
    flags = {"--namespace", "-n", "--replicas", "-r"}
    assert token_for_positional(["aiops", "-n", "x", "scale"], ["aiops"], flags, set()) == "scale"
    assert token_for_positional(["aiops", "--namespace=x"], ["aiops"], flags, set()) is None
    assert token_for_positional(["aiops", "verify"], ["aiops"], flags, {"verify"}) is None
    assert token_for_positional(["build", "doctor"], ["aiops"], flags, set()) is None


def test_invoke_still_treats_a_none_positional_as_missing() -> None:
    """The rule optional_positional.py relies on: an Invoke upgrade that changes it fails here."""
    context = ParserContext(name="t", args=[Argument(names=("p",), kind=str, positional=True)])
    assert [a.name for a in context.missing_positional_args] == ["p"]
    with pytest.raises(ParseError, match="did not receive required positional arguments"):
        Parser(contexts=[context]).parse_argv(["t"])
    assert Parser(contexts=[context]).parse_argv(["t", "x"])[0].as_kwargs["p"] == "x"


def test_an_unknown_playbook_lists_the_playbooks(tmp_path: Path) -> None:
    done = inv(["aiops", "bogus"], tmp_path)
    assert done.returncode == 2
    assert "unknown playbook 'bogus': choose one of doctor, health, resources, scale" in done.stderr


@pytest.mark.parametrize(
    "args", [["history"], ["down", "--yes"], ["rollback"], ["status"]], ids=" ".join
)
def test_no_kubeconfig_is_one_line_and_exit_1_never_a_traceback(
    args: list[str], tmp_path: Path
) -> None:
    done = inv(args, tmp_path, KUBECONFIG=str(tmp_path / "missing-kubeconfig"),
               CLUSTER_PROVIDER="existing")
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    if args == ["status"]:
        assert done.returncode == 0  # reads .state only
        return
    assert done.returncode == 1, output
    assert "missing-kubeconfig" in output or "inv cluster" in output, output
    assert len(output.strip().splitlines()) <= 4, output


def test_inv_lint_runs_through_the_cli_and_records_its_gate(tmp_path: Path) -> None:
    """A gate outside the deploy pipeline (lint) is finished like the others."""
    done = inv(["lint"], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "lint gate PASSED" in done.stdout
    assert (tmp_path / ".state" / "lint.json").exists()
