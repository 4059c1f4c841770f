"""Adapters for the three AI tools, with their real command lines.

- kubectl-ai: `kubectl-ai --quiet [--llm-provider openai --model M] [--kubeconfig P]
  [--skip-permissions] "<query>"`; a non-zero exit is a failure.
- kagent: `kagent invoke -a k8s-agent -t "<task>" -n <KAGENT_NAMESPACE>`; it prints
  the A2A result as JSON and reports errors only on stderr (exit 0), so both are
  judged, and the agent's answer text is taken out of the JSON. kagent has no
  context flag (it, and the `kubectl port-forward` it starts, read KUBECONFIG and
  the current context), so it gets KUBECONFIG with a small file in front whose
  current-context is the target: the user's kubeconfig is never copied or changed.
- Gordon: `docker ai -C <project dir> "<prompt>"` through `todo_deploy.tools.gordon`,
  detected with `docker ai version`.

Everything runs through `todo_deploy.tools.commands.Runner` (timeout, stdin closed, the
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
from shutil import which
from typing import TYPE_CHECKING, Any, Literal, cast

from todo_deploy.config import PROJECT_ROOT
from todo_deploy.tools import gordon
from todo_deploy.tools.commands import CommandResult, Runner, scrub

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
        "it needs Docker Desktop 4.38+ with Gordon enabled under Settings > Beta features; "
        "an older Docker Desktop or Docker Engine alone has no `docker ai` command "
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
    output: str | None = None,
) -> ToolRun:
    if result.timed_out:
        status: Status = "timeout"
        # a tool's own account of the timeout (Gordon's) says more than the bare fact
        reason = (failure if failure.startswith("timed out")
                  else f"timed out after {result.duration_s:.0f}s")
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
        output=scrub(_clip(result.stdout if output is None else output), secrets),
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


@dataclass(frozen=True)
class KagentAnswer:
    """What `kagent invoke` printed, read as the A2A result it is.

    Released kagent (v0.9.x, v0.10.0-rc3: go/core/cli/internal/cli/agent/invoke.go)
    prints trpc-a2a-go v0.2.5's MessageResult: a Task {"kind": "task", "status":
    {"state": "completed", "message": {...}}, "artifacts": [{"parts": [{"kind":
    "text", "text": ...}]}], "history": [...]} or a Message {"kind": "message",
    "role": "agent", "parts": [...]}. kagent's main branch prints a2a-go v2's
    types: the same fields without "kind", states like "TASK_STATE_COMPLETED",
    roles "ROLE_AGENT" and parts {"text": ...}. The text is taken the way kagent's
    own e2e test reads a task (go/core/test/e2e: status message parts, then
    artifact parts); failing that, the last agent message in the history."""

    text: str
    state: str  # completed, failed, input-required, ... ('' for a plain message)
    raw: str


def _part_texts(parts: Any) -> list[str]:
    return [p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
            and p.get("kind", "text") == "text" and p["text"].strip()]


def _is_agent(message: dict[str, Any]) -> bool:
    return str(message.get("role", "")).lower() in ("agent", "role_agent")


def kagent_answer(stdout: str) -> KagentAnswer | None:
    """The answer in `kagent invoke`'s JSON, or None when stdout is not JSON."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return KagentAnswer("", "", stdout.strip())
    if "parts" in data and "status" not in data:  # a Message
        return KagentAnswer("\n".join(_part_texts(data["parts"])), "", stdout.strip())
    status = data["status"] if isinstance(data.get("status"), dict) else {}
    message = status["message"] if isinstance(status.get("message"), dict) else {}
    state = str(status.get("state", "")).lower().removeprefix("task_state_").replace("_", "-")
    texts = _part_texts(message.get("parts"))
    for artifact in data.get("artifacts") or []:
        if isinstance(artifact, dict):
            texts += [t for t in _part_texts(artifact.get("parts")) if t not in texts]
    if not texts:
        agent = [m for m in data.get("history") or [] if isinstance(m, dict) and _is_agent(m)]
        texts = _part_texts(agent[-1].get("parts")) if agent else []
    return KagentAnswer("\n".join(texts), state, stdout.strip())


def judge_kagent(result: CommandResult) -> str:
    """Why a kagent run failed ('' = it did not): exit code, stderr error, non-JSON
    stdout, or a task the agent did not complete."""
    if result.returncode != 0:
        return f"exit code {result.returncode}"
    match = _ERROR_WORD.search(result.stderr)
    if match:
        line = next(
            (ln for ln in result.stderr.splitlines() if _ERROR_WORD.search(ln)), match.group(0)
        )
        return f"error on stderr: {line.strip()[:300]}"
    answer = kagent_answer(result.stdout)
    if answer is None:
        first = (result.stdout.strip().splitlines() or ["(empty)"])[0][:200]
        return f"stdout is not JSON: {first}"
    if answer.state in ("failed", "rejected", "canceled"):
        return f"the agent's task {answer.state}: {answer.text[:300] or 'no message'}"
    if answer.state in ("input-required", "auth-required"):
        return f"the agent needs {answer.state.split('-')[0]} (it cannot be given here): {answer.text[:300]}"
    return ""


class Kagent(Tool):
    name = "kagent"
    agent = KAGENT_AGENT  # the app's own agent when `inv aiops install-agent` put it there

    def available(self) -> bool:
        return self.which("kagent") is not None

    def command(self, task: str) -> list[str]:
        return ["kagent", "invoke", "-a", self.agent, "-t", task,
                "-n", self.settings.kagent_namespace]

    def install_command(self) -> list[str]:
        return ["kagent", "install", "--profile", "demo"]

    def env(self, kubeconfig: str = "") -> dict[str, str]:
        # `kagent install` reads the provider key from OPENAI_API_KEY to create its Secret.
        env = self.base_env()
        key = self.settings.openai_api_key.get_secret_value()
        if key:
            env["OPENAI_API_KEY"] = key
        if kubeconfig:
            env["KUBECONFIG"] = kubeconfig
        return env

    def ask(self, prompt: str, *, playbook: str, allow_changes: bool) -> ToolRun:
        with context_kubeconfig_env(self.environ, self.settings.context_name) as kubeconfig:
            result = self.runner.run(self.command(prompt), timeout=self.timeout,
                                     env=self.env(kubeconfig))
        answer = kagent_answer(result.stdout)
        text = answer.text if answer and answer.text else None  # raw JSON only as a fallback
        return _record(self.name, playbook, prompt, result, self.secrets, judge_kagent(result),
                       output=text)

    def install(self) -> ToolRun:
        with context_kubeconfig_env(self.environ, self.settings.context_name) as kubeconfig:
            result = self.runner.run(
                self.install_command(), timeout=max(self.timeout, 600.0), env=self.env(kubeconfig)
            )
        return _record(self.name, "install", "kagent install --profile demo", result,
                       self.secrets, _nonzero(result))


class Gordon(Tool):
    """Docker's Gordon through `todo_deploy.tools.gordon`, run in the project directory."""

    name = "gordon"

    def __init__(
        self,
        runner: Runner,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        workdir: Path | None = None,
    ) -> None:
        super().__init__(runner, settings, environ)
        self.workdir = workdir

    def available(self) -> bool:
        if self.which("docker") is None:
            return False
        return gordon.detect(self.runner, env=self.base_env()).available

    def command(self, prompt: str) -> list[str]:
        return gordon.command(prompt, self.workdir)

    def ask(self, prompt: str, *, playbook: str, allow_changes: bool) -> ToolRun:
        result = gordon.ask(self.runner, prompt, self.timeout, self.workdir, env=self.base_env())
        return _record(self.name, playbook, prompt, result, self.secrets, gordon.judge(result))


def _kubeconfig_paths(environ: Mapping[str, str]) -> list[Path]:
    paths = [Path(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return paths or [Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"]


def _kubeconfig_view(paths: list[Path]) -> tuple[str, set[str]]:
    """(current-context, context names) as clients merge the files: the first file
    that sets current-context wins; contexts are the union."""
    import yaml

    current, names = "", set[str]()
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        current = current or str(data.get("current-context") or "")
        names |= {str(c["name"]) for c in data.get("contexts") or []
                  if isinstance(c, dict) and c.get("name")}
    return current, names


@contextmanager
def context_kubeconfig_env(environ: Mapping[str, str], context: str) -> Iterator[str]:
    """A KUBECONFIG value that selects `context` for tools without a context flag
    (kagent), or '' to leave KUBECONFIG as it is.

    Clients merge the files of KUBECONFIG in order and take current-context from the
    first file that sets it, so a private file holding only `current-context:
    <context>`, put in front of the user's files, selects the context without copying
    any credentials or touching the user's kubeconfig. Removed afterwards."""
    paths = _kubeconfig_paths(environ)
    current, names = _kubeconfig_view(paths) if context else ("", set())
    if not context or current == context or context not in names:
        yield ""
        return
    with tempfile.TemporaryDirectory(prefix="todo-aiops-") as tmp:
        front = Path(tmp) / "current-context"
        front.touch(mode=0o600)
        front.write_text(f"apiVersion: v1\nkind: Config\ncurrent-context: {context}\n")
        yield os.pathsep.join(str(p) for p in [front, *paths])


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
    runner: Runner,
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    kagent_agent: str = KAGENT_AGENT,
) -> dict[str, Tool]:
    """One adapter per tool; Gordon works in `workdir` (default: the project); kagent asks
    `kagent_agent` (the app's own agent once `inv aiops install-agent` put it there)."""
    tools: dict[str, Tool] = {name: cls(runner, settings, environ)
                              for name, cls in ADAPTERS.items() if cls is not Gordon}
    tools["gordon"] = Gordon(runner, settings, environ, workdir or PROJECT_ROOT)
    cast(Kagent, tools["kagent"]).agent = kagent_agent  # ADAPTERS maps "kagent" to Kagent
    return tools
