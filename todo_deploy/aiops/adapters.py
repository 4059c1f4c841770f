"""Adapters for the three AI tools, with their real command lines.

- kubectl-ai: `kubectl-ai --quiet [--llm-provider openai --model M] [--kubeconfig P]
  [--skip-permissions] "<query>"`; a non-zero exit is a failure.
- kagent: `kagent invoke -a k8s-agent -t "<task>" -n <KAGENT_NAMESPACE>`; it prints
  JSON and reports errors only on stderr, so both are judged.
- Gordon: `docker ai "<prompt>"`, detected with `docker ai version`.

Everything runs through `todo_deploy.runner.Runner` (timeout, stdin closed, the
exact command logged with secrets scrubbed). The OpenAI key reaches a tool only
through its subprocess environment, never its command line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from todo_deploy.runner import CommandResult, Runner, scrub

if TYPE_CHECKING:
    from todo_deploy.config import Settings

Status = Literal["ok", "failed", "timeout", "missing"]

OUTPUT_LIMIT = 8000
TAIL_LINES = 12
KAGENT_AGENT = "k8s-agent"


@dataclass(frozen=True)
class ToolInfo:
    name: str
    what: str
    install: str

    def missing_line(self) -> str:
        return f"{self.name} ({self.what}) not found: {self.install}"


TOOLS: dict[str, ToolInfo] = {
    "kubectl-ai": ToolInfo(
        "kubectl-ai",
        "Google's natural-language Kubernetes agent",
        "install the release binary from github.com/GoogleCloudPlatform/kubectl-ai "
        "(or `go install github.com/GoogleCloudPlatform/kubectl-ai/cmd@latest`, "
        "or `kubectl krew install ai`) and put it on PATH",
    ),
    "kagent": ToolInfo(
        "kagent",
        "the CNCF in-cluster AI agent framework",
        "`brew install kagent` or the install script from kagent.dev "
        "(get-kagent), then `inv aiops --install-kagent`",
    ),
    "gordon": ToolInfo(
        "gordon",
        "Docker's AI assistant, `docker ai`",
        "use Docker Desktop 4.38+ and enable Gordon under Settings > Beta features "
        "(`docker ai version` must answer)",
    ),
}


@dataclass(frozen=True)
class ToolRun:
    """One prompt sent to one tool, as stored in the gate's details."""

    tool: str
    playbook: str
    prompt: str
    status: Status
    command: str = ""
    returncode: int | None = None
    duration_s: float = 0.0
    output: str = ""
    error_tail: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tail(text: str, lines: int = TAIL_LINES, limit: int = 1500) -> str:
    kept = "\n".join(text.strip().splitlines()[-lines:])
    return kept[-limit:]


def _clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more chars)"


def _record(
    tool: str,
    playbook: str,
    prompt: str,
    result: CommandResult,
    secrets: list[str],
    failure: str = "",
) -> ToolRun:
    if result.timed_out:
        status: Status = "timeout"
        reason = f"timed out after {result.duration_s:.0f}s"
    elif failure:
        status, reason = "failed", failure
    else:
        status, reason = "ok", ""
    return ToolRun(
        tool=tool,
        playbook=playbook,
        prompt=scrub(prompt, secrets),
        status=status,
        command=scrub(shlex.join(result.argv), secrets),
        returncode=result.returncode,
        duration_s=round(result.duration_s, 2),
        output=scrub(_clip(result.stdout), secrets),
        error_tail=scrub(tail(result.stderr), secrets) if status != "ok" else "",
        reason=scrub(reason, secrets),
    )


def _nonzero(result: CommandResult) -> str:
    return f"exit code {result.returncode}" if result.returncode != 0 else ""


class Tool:
    """Common plumbing: locate the executable, build the env, run one prompt."""

    name: str = ""

    def __init__(
        self,
        runner: Runner,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)

    @property
    def info(self) -> ToolInfo:
        return TOOLS[self.name]

    @property
    def timeout(self) -> float:
        return float(self.settings.aiops_timeout_seconds)

    @property
    def secrets(self) -> list[str]:
        return self.settings.secret_values()

    def which(self, name: str) -> str | None:
        from shutil import which

        return which(name, path=self.environ.get("PATH", os.defpath))

    def available(self) -> bool:
        raise NotImplementedError

    def base_env(self) -> dict[str, str]:
        return dict(self.environ)

    def ask(self, prompt: str, *, playbook: str, allow_changes: bool) -> ToolRun:
        raise NotImplementedError


class KubectlAI(Tool):
    name = "kubectl-ai"

    def executable(self) -> str | None:
        if self.which("kubectl-ai"):
            return "kubectl-ai"
        home = self.environ.get("HOME", "")
        krew = Path(self.environ.get("KREW_ROOT", f"{home}/.krew")) / "bin" / "kubectl-ai"
        return str(krew) if home and os.access(krew, os.X_OK) else None

    def available(self) -> bool:
        return self.executable() is not None

    def command(self, query: str, *, allow_changes: bool, kubeconfig: str = "") -> list[str]:
        argv = [self.executable() or "kubectl-ai", "--quiet"]
        if self.settings.effective_llm_provider == "openai":
            argv += ["--llm-provider", "openai", "--model", self.settings.llm_model]
        if kubeconfig:
            argv += ["--kubeconfig", kubeconfig]
        if allow_changes:
            argv.append("--skip-permissions")
        argv.append(query)
        return argv

    def env(self) -> dict[str, str]:
        env = self.base_env()
        key = self.settings.openai_api_key.get_secret_value()
        if key and self.settings.effective_llm_provider == "openai":
            env["OPENAI_API_KEY"] = key
            if self.settings.openai_base_url:
                env["OPENAI_ENDPOINT"] = self.settings.openai_base_url
        return env

    def ask(self, prompt: str, *, playbook: str, allow_changes: bool) -> ToolRun:
        with context_kubeconfig(self.environ, self.settings.context_name) as kubeconfig:
            argv = self.command(prompt, allow_changes=allow_changes, kubeconfig=kubeconfig)
            result = self.runner.run(argv, timeout=self.timeout, env=self.env())
        return _record(self.name, playbook, prompt, result, self.secrets, _nonzero(result))


_ERROR_WORD = re.compile(r"\b(error|fatal|panic)\b", re.IGNORECASE)


def judge_kagent(result: CommandResult) -> str:
    """Why a kagent run failed ('' = it did not): exit code, non-JSON stdout, stderr error."""
    if result.returncode != 0:
        return f"exit code {result.returncode}"
    match = _ERROR_WORD.search(result.stderr)
    if match:
        line = next(
            (ln for ln in result.stderr.splitlines() if _ERROR_WORD.search(ln)), match.group(0)
        )
        return f"error on stderr: {line.strip()[:300]}"
    try:
        json.loads(result.stdout)
    except ValueError:
        first = (result.stdout.strip().splitlines() or ["(empty)"])[0][:200]
        return f"stdout is not JSON: {first}"
    return ""


class Kagent(Tool):
    name = "kagent"

    def available(self) -> bool:
        return self.which("kagent") is not None

    def command(self, task: str) -> list[str]:
        return ["kagent", "invoke", "-a", KAGENT_AGENT, "-t", task,
                "-n", self.settings.kagent_namespace]

    def install_command(self) -> list[str]:
        return ["kagent", "install", "--profile", "demo"]

    def env(self) -> dict[str, str]:
        # `kagent install` reads the provider key from OPENAI_API_KEY to create its Secret.
        env = self.base_env()
        key = self.settings.openai_api_key.get_secret_value()
        if key:
            env["OPENAI_API_KEY"] = key
        return env

    def ask(self, prompt: str, *, playbook: str, allow_changes: bool) -> ToolRun:
        result = self.runner.run(self.command(prompt), timeout=self.timeout, env=self.env())
        return _record(self.name, playbook, prompt, result, self.secrets, judge_kagent(result))

    def install(self) -> ToolRun:
        result = self.runner.run(
            self.install_command(), timeout=max(self.timeout, 600.0), env=self.env()
        )
        return _record(self.name, "install", "kagent install --profile demo", result,
                       self.secrets, _nonzero(result))


class Gordon(Tool):
    """Docker's Gordon, through the shared `todo_deploy.gordon` module when it exists
    (it runs `docker ai` with the process environment)."""

    name = "gordon"

    def available(self) -> bool:
        if self.which("docker") is None:
            return False
        shared = _shared_gordon()
        if shared is not None:
            return bool(shared.available(self.runner))
        return gordon_available(self.runner, env=self.base_env())

    def command(self, prompt: str) -> list[str]:
        return ["docker", "ai", prompt]

    def ask(self, prompt: str, *, playbook: str, allow_changes: bool) -> ToolRun:
        shared = _shared_gordon()
        if shared is not None:
            result = shared.ask(self.runner, prompt, self.timeout)
        else:
            result = gordon_ask(self.runner, prompt, self.timeout, env=self.base_env())
        return _record(self.name, playbook, prompt, result, self.secrets, _nonzero(result))


def gordon_available(runner: Runner, env: dict[str, str] | None = None) -> bool:
    """Gordon is there when `docker ai version` answers (Docker Desktop 4.38+, Beta on)."""
    result = runner.run(["docker", "ai", "version"], timeout=20, env=env)
    return result.ok


def gordon_ask(
    runner: Runner, prompt: str, timeout: float, env: dict[str, str] | None = None
) -> CommandResult:
    return runner.run(["docker", "ai", prompt], timeout=timeout, env=env)


def _shared_gordon() -> Any:
    """The team's `todo_deploy.gordon` module, when it has been written."""
    try:
        from todo_deploy import gordon  # type: ignore[attr-defined]
    except ImportError:
        return None
    if callable(getattr(gordon, "available", None)) and callable(getattr(gordon, "ask", None)):
        return gordon
    return None


@contextmanager
def context_kubeconfig(environ: Mapping[str, str], context: str) -> Iterator[str]:
    """A kubeconfig path for kubectl-ai (which has no --context flag), or ''.

    '' when the current context already is `context` (or no context is wanted):
    then kubectl-ai reads KUBECONFIG from its environment as set. Otherwise a
    private temporary copy whose current-context is `context`, removed afterwards.
    """
    import yaml

    paths = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    path = Path(paths[0]) if paths else Path(environ.get("HOME", "~")).expanduser() / ".kube/config"
    try:
        data = yaml.safe_load(path.read_text()) if context else None
    except (OSError, yaml.YAMLError):
        data = None
    names = {c.get("name") for c in (data or {}).get("contexts") or []}
    if not data or data.get("current-context") == context or context not in names:
        yield ""
        return
    data["current-context"] = context
    with tempfile.TemporaryDirectory(prefix="todo-aiops-") as tmp:
        target = Path(tmp) / "kubeconfig"
        target.touch(mode=0o600)
        target.write_text(yaml.safe_dump(data))
        yield str(target)


ADAPTERS: dict[str, type[Tool]] = {"kubectl-ai": KubectlAI, "kagent": Kagent, "gordon": Gordon}


def make_tools(
    runner: Runner, settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, Tool]:
    return {name: cls(runner, settings, environ) for name, cls in ADAPTERS.items()}
