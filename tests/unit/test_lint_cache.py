"""hadolint runs once per Dockerfile content: an unchanged Dockerfile reuses its pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from todo_deploy.gates import Verdict
from todo_deploy.images import dockerfile_lint
from todo_deploy.tools.commands import CommandResult


class CountingRunner:
    def __init__(self, stdout: str = "[]") -> None:
        self.calls: list[list[str]] = []
        self.stdout = stdout

    def run(self, argv, *, timeout: float = 600, env=None, input_text=None) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(tuple(argv), 0 if self.stdout == "[]" else 1, self.stdout, "")


@pytest.fixture
def hadolint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "hadolint"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setattr(dockerfile_lint, "hadolint_path", lambda: str(binary))
    return binary


def test_a_passed_lint_is_reused_until_the_dockerfile_changes(tmp_path: Path, hadolint: Path) -> None:
    dockerfile, state = tmp_path / "backend.Dockerfile", tmp_path / ".state"
    dockerfile.write_text("FROM python:3.11-slim\nUSER 10001\n")
    runner = CountingRunner()
    first = dockerfile_lint.lint(runner, dockerfile, "backend", state)  # type: ignore[arg-type]
    again = dockerfile_lint.lint(runner, dockerfile, "backend", state)  # type: ignore[arg-type]
    assert first.verdict is again.verdict is Verdict.PASS
    assert len(runner.calls) == 1 and again.evidence.endswith("(unchanged Dockerfile: cached)")
    dockerfile.write_text("FROM python:3.11-slim\nUSER 10002\n")
    dockerfile_lint.lint(runner, dockerfile, "backend", state)  # type: ignore[arg-type]
    assert len(runner.calls) == 2


def test_a_failed_lint_is_never_cached(tmp_path: Path, hadolint: Path) -> None:
    dockerfile, state = tmp_path / "backend.Dockerfile", tmp_path / ".state"
    dockerfile.write_text("FROM python\n")
    runner = CountingRunner('[{"line": 1, "code": "DL3006", "level": "warning", '
                            '"message": "Always tag the version of an image explicitly"}]')
    for _ in range(2):
        check = dockerfile_lint.lint(runner, dockerfile, "backend", state)  # type: ignore[arg-type]
        assert check.verdict is Verdict.FAIL and "DL3006" in check.evidence
    assert len(runner.calls) == 2
