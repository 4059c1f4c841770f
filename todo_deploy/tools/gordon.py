"""Gordon, Docker's AI agent (`docker ai`, shipped with Docker Desktop 4.38+).

Detected with `docker ai version`. Asked with `docker ai -C <project dir> "<prompt>"`
(docs.docker.com/ai/gordon/how-to/cli: `-C`/`--working-dir` sets the directory
Gordon reads files from), so a Dockerfile is named by its path in the project,
not pasted into the prompt. Current Gordon is a terminal UI even when given a
prompt; the Runner gives it no TTY (stdin closed, output captured) and a
timeout, and `judge()` turns what comes back into one plain reason: answered,
needs an interactive terminal, too old for `-C`, or failed. Everything goes
through the Runner, so the exact command is logged and tests substitute fakes.
`inv build --gordon` and `inv aiops` use it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from todo_deploy.tools.commands import CommandResult, Runner

NOT_FOUND = (
    "Gordon (`docker ai`) is not available: this Docker has no `ai` command. Gordon needs "
    "Docker Desktop 4.38+ with Gordon enabled (Settings > Beta features); an older Docker "
    "Desktop, or Docker Engine alone, has none"
)
DETECT_TIMEOUT_S = 20

# How the docker CLI answers a command it does not have: Docker 28 ("docker: unknown
# command: docker ai"), older releases ("docker: 'ai' is not a docker command.").
_NO_AI = re.compile(r"unknown command: docker ai|'ai' is not a docker command")
# A terminal UI started without a terminal (Bubble Tea: "could not open a new TTY: open
# /dev/tty: no such device or address"; Go's "inappropriate ioctl for device").
_NO_TTY = re.compile(r"\bTTY\b|/dev/tty|not a terminal|inappropriate ioctl", re.IGNORECASE)
_NO_WORKDIR = re.compile(r"unknown shorthand flag: 'C'|unknown flag: --working-dir")


@dataclass(frozen=True)
class Detection:
    available: bool
    version: str = ""
    message: str = ""  # one line when not available


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def detect(runner: Runner, env: dict[str, str] | None = None) -> Detection:
    """Is Gordon there? `docker ai version`, with a plain reason when not."""
    result = runner.run(["docker", "ai", "version"], timeout=DETECT_TIMEOUT_S, env=env)
    if result.ok:
        return Detection(True, _first_line(result.stdout))
    said = result.stderr + result.stdout
    if result.returncode == 127:
        return Detection(False, message="the docker CLI is not on PATH: " + NOT_FOUND)
    if _NO_AI.search(said):
        return Detection(False, message=NOT_FOUND)
    return Detection(False, message=f"`docker ai version` failed: {_first_line(said)[:200]}")


def available(runner: Runner) -> bool:
    """True when `docker ai version` answers (missing docker CLI or plugin → False)."""
    return detect(runner).available


def command(prompt: str, workdir: Path | None = None) -> list[str]:
    argv = ["docker", "ai"]
    if workdir is not None:
        argv += ["-C", str(workdir)]
    return [*argv, prompt]


def ask(
    runner: Runner,
    prompt: str,
    timeout: float,
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Ask Gordon one question in `workdir`; the answer is the result's stdout."""
    return runner.run(command(prompt, workdir), timeout=timeout, env=env)


def judge(result: CommandResult) -> str:
    """Why Gordon gave no answer ('' = it answered)."""
    if result.ok and result.stdout.strip():
        return ""
    again = f"run `{shlex.join(result.argv)}` in a terminal"
    if _NO_WORKDIR.search(result.stderr):
        return ("this Gordon has no -C/--working-dir option (Docker Desktop too old for it): "
                "update Docker Desktop")
    if _NO_TTY.search(result.stderr):
        return f"Gordon needs an interactive terminal here: {again}"
    if result.timed_out:
        return (f"timed out after {result.duration_s:.0f}s: Gordon may be waiting in its "
                f"interactive UI; {again}")
    if result.returncode != 0:
        return f"exit code {result.returncode}: {_first_line(result.stderr or result.stdout)[:300]}"
    return f"Gordon printed nothing (it may need an interactive terminal): {again}"


def dockerfile_prompt(path: Path, workdir: Path | None = None) -> str:
    """A review of the Dockerfile at `path`, named relative to Gordon's working directory."""
    shown = path.relative_to(workdir) if workdir and path.is_relative_to(workdir) else path
    return (
        f"Review the Dockerfile {shown} in this project for security, image size, build cache "
        "use and best practices. It must build with the classic builder (no BuildKit), run as "
        "a numeric non-root user and take its base image from the PYTHON_IMAGE build "
        "argument. Answer with a short list of concrete changes, most important first."
    )


def review_dockerfile(
    runner: Runner, path: Path, timeout: float, workdir: Path | None = None
) -> CommandResult:
    """Gordon's review of one Dockerfile, run in `workdir` (default: the Dockerfile's
    directory). A result that is not a review is returned failed, with judge()'s reason
    as its stderr, so callers that only look at `ok` report the right thing."""
    workdir = workdir or path.parent
    result = ask(runner, dockerfile_prompt(path, workdir), timeout, workdir)
    why = judge(result)
    if not why:
        return result
    return CommandResult(result.argv, result.returncode or 1, result.stdout, why,
                         result.duration_s, result.timed_out)
