"""Gordon, Docker's AI agent (`docker ai`, shipped with Docker Desktop 4.38+).

Detected with `docker ai version`; asked with `docker ai "<prompt>"` (no stdin,
a timeout). Everything goes through the Runner, so the exact command is logged
and tests substitute a recording fake. `inv build --gordon` and `inv aiops` use it.
"""

from __future__ import annotations

from pathlib import Path

from todo_deploy.runner import CommandResult, Runner

NOT_FOUND = (
    "Gordon (docker ai) not found: it ships with Docker Desktop 4.38+; "
    "enable it under Settings → Beta features"
)
DETECT_TIMEOUT_S = 20


def available(runner: Runner) -> bool:
    """True when `docker ai version` answers (missing docker CLI or plugin → False)."""
    return runner.run(["docker", "ai", "version"], timeout=DETECT_TIMEOUT_S).ok


def ask(runner: Runner, prompt: str, timeout: float) -> CommandResult:
    """Ask Gordon one question; the answer is the result's stdout."""
    return runner.run(["docker", "ai", prompt], timeout=timeout)


def dockerfile_prompt(path: Path) -> str:
    return (
        f"Review this Dockerfile ({path.name}) for security, image size, build cache use "
        "and best practices. It must build with the classic builder (no BuildKit), run as "
        "a numeric non-root user and take its base image from the PYTHON_IMAGE build "
        "argument. Answer with a short list of concrete changes, most important first.\n\n"
        + path.read_text()
    )


def review_dockerfile(runner: Runner, path: Path, timeout: float) -> CommandResult:
    """Gordon's review of one Dockerfile."""
    return ask(runner, dockerfile_prompt(path), timeout)
