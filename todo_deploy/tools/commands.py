"""The one way the workflow runs outside commands (minikube, kind, helm, kubectl-ai, ...).

Every command is logged exactly as issued, with secret values scrubbed.
Tests substitute a recording runner to check the exact command lines.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class Runner:
    """Runs commands with a timeout, no stdin, and logs each one."""

    log: Callable[[str], None] = print
    secrets: Sequence[str] = ()

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 600,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
    ) -> CommandResult:
        self.log(f"$ {scrub(shlex.join(argv), self.secrets)}")
        started = time.monotonic()
        try:
            done = subprocess.run(
                [self.which(argv[0]) or argv[0], *argv[1:]],  # minikube.exe, helm.cmd on Windows
                check=False,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                input=input_text,
                stdin=None if input_text is not None else subprocess.DEVNULL,
            )
            result = CommandResult(
                tuple(argv), done.returncode, done.stdout, done.stderr, time.monotonic() - started
            )
        except subprocess.TimeoutExpired as exc:
            result = CommandResult(
                tuple(argv),
                124,
                _text(exc.stdout),
                _text(exc.stderr) + f"\ntimed out after {timeout:g}s",
                time.monotonic() - started,
                timed_out=True,
            )
        except FileNotFoundError:
            result = CommandResult(tuple(argv), 127, "", f"{argv[0]}: command not found")
        return result


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
