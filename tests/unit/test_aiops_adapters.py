"""The AI tool adapters against stand-in executables that record argv and env."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.doctor import Snapshot
from todo_deploy.gates import Verdict
from todo_deploy.stages.aiops import stage
from todo_deploy.stages.aiops.adapters import Gordon, Kagent, KubectlAI, judge_kagent, kagent_answer
from todo_deploy.stages.aiops.playbooks import PlaybookRefused
from todo_deploy.tools.commands import CommandResult, Runner

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_ai_tool.py"
KEY = "sk-test-4f9c2b7e1d0a"
ANSWER = "All 3 pods in namespace todo are Running and Ready; no warning events."
KUBECONFIG_TWO_CONTEXTS = (
    "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
    "contexts:\n- name: other\n  context: {cluster: c, user: u}\n"
    "- name: wanted\n  context: {cluster: c, user: u}\n"
    "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443'}\n"
    "users:\n- name: u\n  user: {}\n"
)
BASE_URL = "https://llm.example.test/v1"


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def install(bin_dir: Path, *names: str) -> None:
    for name in names:
        # Run by this interpreter, not `#!/usr/bin/env python3` (a version manager's shim,
        # if any, costs ~0.05-0.1 s a call); the file keeps the tool's name (its argv[0]).
        script = FAKE.read_text().split("\n", 1)[1]
        (bin_dir / name).write_text(f"#!{sys.executable}\n{script}")
        (bin_dir / name).chmod(0o755)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


def calls(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _restore_process_env() -> Any:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def environ(bin_dir: Path, record: Path, **modes: str) -> dict[str, str]:
    """The tools' environment: the stand-ins' bin dir prepended to PATH (in this process too,
    since the shared Gordon module runs `docker ai` with the process environment)."""
    python_dir = str(Path(shutil.which("python3") or "/usr/bin/python3").parent)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{python_dir}",
        "HOME": str(bin_dir.parent),
        "FAKE_RECORD": str(record),
    }
    env.update({f"FAKE_MODE_{k.upper()}": v for k, v in modes.items()})
    for key in [k for k in os.environ if k.startswith("FAKE_MODE_")]:
        del os.environ[key]
    os.environ.update(env)
    return env


def settings_for(tmp_path: Path, **values: str) -> LoadedSettings:
    base = {"KUBE_CONTEXT": "", "CLUSTER_PROVIDER": "existing"}
    base.update(values)
    return load_settings(root=tmp_path, environ=base)


def recording_runner(loaded: LoadedSettings) -> tuple[Runner, list[str]]:
    lines: list[str] = []
    return Runner(log=lines.append, secrets=loaded.settings.secret_values()), lines


WITH_KEY = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": BASE_URL, "LLM_MODEL": "gpt-4o-mini"}


# --- kubectl-ai ------------------------------------------------------------------------------


def test_kubectl_ai_read_only_command_line_and_key_in_env_only(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai")
    loaded = settings_for(tmp_path, **WITH_KEY)
    runner, log = recording_runner(loaded)
    tool = KubectlAI(runner, loaded.settings, environ(bin_dir, record))

    assert tool.available()
    run = tool.ask("why are pods failing?", playbook="health", allow_changes=False)

    [call] = calls(record)
    assert call["argv"] == [
        "kubectl-ai", "--quiet", "--llm-provider", "openai", "--model", "gpt-4o-mini",
        "why are pods failing?",
    ]
    assert "--skip-permissions" not in call["argv"]
    assert call["env"]["OPENAI_API_KEY"] == KEY
    assert call["env"]["OPENAI_ENDPOINT"] == BASE_URL
    assert call["stdin"] == ""
    assert all(KEY not in arg for arg in call["argv"])
    assert log and all(KEY not in line for line in log)
    assert log[0] == "$ kubectl-ai --quiet --llm-provider openai --model gpt-4o-mini 'why are pods failing?'"
    assert run.status == "ok" and run.returncode == 0
    assert "CrashLoopBackOff" in run.output
    assert KEY not in json.dumps(run.to_dict())


def test_kubectl_ai_allow_changes_adds_skip_permissions(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai")
    loaded = settings_for(tmp_path, **WITH_KEY)
    runner, _ = recording_runner(loaded)
    KubectlAI(runner, loaded.settings, environ(bin_dir, record)).ask(
        "scale it", playbook="scale", allow_changes=True
    )
    [call] = calls(record)
    assert call["argv"] == [
        "kubectl-ai", "--quiet", "--llm-provider", "openai", "--model", "gpt-4o-mini",
        "--skip-permissions", "scale it",
    ]


def test_kubectl_ai_without_key_uses_its_own_provider_and_gets_no_key(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    KubectlAI(runner, loaded.settings, environ(bin_dir, record)).ask(
        "q", playbook="health", allow_changes=False
    )
    [call] = calls(record)
    assert call["argv"] == ["kubectl-ai", "--quiet", "q"]
    assert call["env"]["OPENAI_API_KEY"] is None


def test_kubectl_ai_gets_a_kubeconfig_for_the_configured_context(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        "contexts:\n- name: other\n  context: {cluster: c, user: u}\n"
        "- name: wanted\n  context: {cluster: c, user: u}\n"
        "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443'}\n"
        "users:\n- name: u\n  user: {}\n"
    )
    loaded = settings_for(tmp_path, KUBE_CONTEXT="wanted")
    runner, _ = recording_runner(loaded)
    env = environ(bin_dir, record) | {"KUBECONFIG": str(kubeconfig)}
    KubectlAI(runner, loaded.settings, env).ask("q", playbook="health", allow_changes=False)
    [call] = calls(record)
    flag = call["argv"].index("--kubeconfig")
    temp = call["argv"][flag + 1]
    assert temp != str(kubeconfig)
    assert call["kubeconfig_current_context"] == "wanted"
    assert not Path(temp).exists(), "the temporary kubeconfig is removed after the run"
    assert "current-context: other" in kubeconfig.read_text(), "the user's file is untouched"

    # Already on the wanted context: no flag, KUBECONFIG passes through as set.
    record.unlink()
    loaded = settings_for(tmp_path, KUBE_CONTEXT="other")
    runner, _ = recording_runner(loaded)
    KubectlAI(runner, loaded.settings, env).ask("q", playbook="health", allow_changes=False)
    [call] = calls(record)
    assert "--kubeconfig" not in call["argv"]
    assert call["env"]["KUBECONFIG"] == str(kubeconfig)


def test_kubectl_ai_failure_is_a_failed_run_with_the_stderr_tail(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai")
    loaded = settings_for(tmp_path, **WITH_KEY)
    runner, _ = recording_runner(loaded)
    run = KubectlAI(runner, loaded.settings, environ(bin_dir, record, kubectl_ai="fail")).ask(
        "q", playbook="health", allow_changes=False
    )
    assert run.status == "failed" and run.returncode == 1
    assert run.reason == "exit code 1"
    assert "401 Unauthorized" in run.error_tail


def test_kubectl_ai_timeout_is_a_timeout_run(tmp_path: Path, bin_dir: Path, record: Path) -> None:
    install(bin_dir, "kubectl-ai")
    loaded = settings_for(tmp_path, AIOPS_TIMEOUT_SECONDS="5")
    runner, _ = recording_runner(loaded)
    run = KubectlAI(runner, loaded.settings, environ(bin_dir, record, kubectl_ai="sleep")).ask(
        "q", playbook="health", allow_changes=False
    )
    assert run.status == "timeout"
    assert 4.5 <= run.duration_s < 30
    assert "timed out after 5s" in run.error_tail


# --- kagent ----------------------------------------------------------------------------------


def test_kagent_command_line_and_json_answer(tmp_path: Path, bin_dir: Path, record: Path) -> None:
    install(bin_dir, "kagent")
    loaded = settings_for(tmp_path, KAGENT_NAMESPACE="agents", **WITH_KEY)
    runner, log = recording_runner(loaded)
    run = Kagent(runner, loaded.settings, environ(bin_dir, record)).ask(
        "check the pods", playbook="health", allow_changes=False
    )
    [call] = calls(record)
    assert call["argv"] == [
        "kagent", "invoke", "-a", "k8s-agent", "-t", "check the pods", "-n", "agents"
    ]
    assert all(KEY not in line for line in log)
    assert run.status == "ok"
    assert run.output == ANSWER  # the agent's text, not the A2A JSON


@pytest.mark.parametrize("mode", ["ok", "v1_types", "message"])
def test_kagent_answer_text_from_each_json_shape(
    tmp_path: Path, bin_dir: Path, record: Path, mode: str
) -> None:
    install(bin_dir, "kagent")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    run = Kagent(runner, loaded.settings, environ(bin_dir, record, kagent=mode)).ask(
        "check the pods", playbook="health", allow_changes=False
    )
    assert (run.status, run.output) == ("ok", ANSWER)


def test_kagent_answer_reads_history_when_there_is_no_artifact() -> None:
    task = {"kind": "task", "id": "t", "status": {"state": "completed"}, "history": [
        {"kind": "message", "role": "user", "parts": [{"kind": "text", "text": "q"}]},
        {"kind": "message", "role": "agent", "parts": [{"kind": "data", "data": {}}]},
        {"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": "the answer"}]},
    ]}
    answer = kagent_answer(json.dumps(task))
    assert answer is not None and (answer.text, answer.state) == ("the answer", "completed")
    assert kagent_answer("not json") is None


def test_kagent_json_without_text_is_kept_raw(tmp_path: Path) -> None:
    raw = json.dumps({"kind": "task", "id": "t", "status": {"state": "completed"}})
    result = CommandResult(("kagent",), 0, raw + "\n", "")
    assert judge_kagent(result) == ""
    answer = kagent_answer(result.stdout)
    assert answer is not None and answer.text == "" and answer.raw == raw


def test_kagent_gets_the_target_context_through_kubeconfig(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kagent")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG_TWO_CONTEXTS)
    before = kubeconfig.read_text()
    loaded = settings_for(tmp_path, KUBE_CONTEXT="wanted")
    runner, _ = recording_runner(loaded)
    env = environ(bin_dir, record) | {"KUBECONFIG": str(kubeconfig)}
    tool = Kagent(runner, loaded.settings, env)
    tool.ask("q", playbook="health", allow_changes=False)
    tool.install()
    for call in calls(record):
        assert call["kubeconfig_current_context"] == "wanted"
        front, *rest = call["env"]["KUBECONFIG"].split(os.pathsep)
        assert rest == [str(kubeconfig)], "the user's files follow, unchanged and uncopied"
        assert not Path(front).exists(), "the small front file is removed after the run"
        assert "--context" not in call["argv"] and "--kubeconfig" not in call["argv"]
    assert kubeconfig.read_text() == before

    # Already the current context: KUBECONFIG passes through as set.
    record.unlink()
    loaded = settings_for(tmp_path, KUBE_CONTEXT="other")
    Kagent(recording_runner(loaded)[0], loaded.settings, env).ask(
        "q", playbook="health", allow_changes=False)
    [call] = calls(record)
    assert call["env"]["KUBECONFIG"] == str(kubeconfig)
    assert call["kubeconfig_current_context"] == "other"


def test_kagent_has_no_context_flag(tmp_path: Path, bin_dir: Path, record: Path) -> None:
    """Why the context goes through KUBECONFIG: kagent rejects --context/--kubeconfig."""
    install(bin_dir, "kagent")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    environ(bin_dir, record)
    for flag in ("--context", "--kubeconfig"):
        done = runner.run(["kagent", "invoke", "-a", "k8s-agent", "-t", "q", flag, "x"])
        assert done.returncode == 1 and done.stderr.startswith(f"Error: unknown flag: {flag}")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("stderr_error", "error on stderr: Error getting agent metadata"),
        ("not_json", "stdout is not JSON: agent answered in plain text"),
        ("fail", "exit code 1"),
        ("task_failed", "the agent's task failed: model provider returned 401"),
        ("input_required", "the agent needs input (it cannot be given here): Which namespace"),
    ],
)
def test_kagent_failures_are_judged_by_stdout_and_stderr(
    tmp_path: Path, bin_dir: Path, record: Path, mode: str, reason: str
) -> None:
    install(bin_dir, "kagent")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    run = Kagent(runner, loaded.settings, environ(bin_dir, record, kagent=mode)).ask(
        "t", playbook="health", allow_changes=False
    )
    assert run.status == "failed"
    assert run.reason.startswith(reason)
    if mode == "stderr_error":
        assert run.returncode == 0
        assert "agent kagent/k8s-agent not found" in run.error_tail


def test_judge_kagent_accepts_json_with_harmless_stderr() -> None:
    ok = CommandResult(("kagent",), 0, '{"status": "done"}', "INFO connecting to controller\n")
    assert judge_kagent(ok) == ""


# --- Gordon ----------------------------------------------------------------------------------


def test_gordon_detected_with_docker_ai_version_then_asked_in_the_project(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "docker")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    gordon = Gordon(runner, loaded.settings, environ(bin_dir, record), workdir=tmp_path)
    assert gordon.available()
    run = gordon.ask("review this", playbook="dockerfiles", allow_changes=False)
    assert [c["argv"] for c in calls(record)] == [
        ["docker", "ai", "version"],
        ["docker", "ai", "-C", str(tmp_path), "review this"],
    ]
    assert all(c["stdin"] == "" for c in calls(record))
    assert run.status == "ok" and "multi-stage" in run.output


@pytest.mark.parametrize("mode", ["no_ai", "no_ai_old"])
def test_docker_without_gordon_says_docker_desktop_is_too_old(
    tmp_path: Path, bin_dir: Path, record: Path, mode: str
) -> None:
    from todo_deploy.tools import gordon as gordon_module

    install(bin_dir, "docker")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    env = environ(bin_dir, record, docker=mode)
    assert not Gordon(runner, loaded.settings, env).available()
    found = gordon_module.detect(runner, env)
    assert found.message == gordon_module.NOT_FOUND
    assert "Docker Desktop 4.38+" in found.message and "\n" not in found.message


@pytest.mark.parametrize(("mode", "reason"), [
    ("no_workdir", "this Gordon has no -C/--working-dir option (Docker Desktop too old for it)"),
    ("needs_tty", "Gordon needs an interactive terminal here: run `docker ai -C "),
    ("fail", "exit code 1: Error: Gordon is not enabled"),
])
def test_gordon_that_cannot_answer_here_says_why(
    tmp_path: Path, bin_dir: Path, record: Path, mode: str, reason: str
) -> None:
    install(bin_dir, "docker")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    run = Gordon(runner, loaded.settings, environ(bin_dir, record, docker=mode),
                 workdir=tmp_path).ask("review this", playbook="dockerfiles", allow_changes=False)
    assert run.status == "failed"
    assert run.reason.startswith(reason), run.reason


def test_gordon_waiting_in_its_ui_times_out_with_a_plain_reason(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "docker")
    loaded = settings_for(tmp_path, AIOPS_TIMEOUT_SECONDS="5")
    runner, _ = recording_runner(loaded)
    run = Gordon(runner, loaded.settings, environ(bin_dir, record, docker="tui"),
                 workdir=tmp_path).ask("review this", playbook="dockerfiles", allow_changes=False)
    assert run.status == "timeout"
    assert run.reason == (f"timed out after 5s: Gordon may be waiting in its interactive UI; "
                          f"run `docker ai -C {tmp_path} 'review this'` in a terminal")


def test_gordon_judge_says_needs_a_terminal_for_a_tui_that_timed_out() -> None:
    from todo_deploy.tools import gordon as gordon_module

    hung = CommandResult(("docker", "ai", "-C", "/p", "q"), 124, "", "\ntimed out after 5s", 5.0,
                         timed_out=True)
    assert gordon_module.judge(hung) == (
        "timed out after 5s: Gordon may be waiting in its interactive UI; "
        "run `docker ai -C /p q` in a terminal")
    assert gordon_module.judge(CommandResult(("docker", "ai", "q"), 0, "an answer about -t TTY")) == ""


# --- the stage: tools are advisory, the doctor decides ---------------------------------------


def healthy(settings: Any, namespace: str) -> Snapshot:
    return Snapshot(namespace=namespace)


def test_missing_tools_are_one_line_skips_and_the_gate_passes(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    loaded = settings_for(tmp_path, **WITH_KEY)
    runner, _ = recording_runner(loaded)
    lines: list[str] = []
    result = stage.run(
        loaded, "health", runner=runner, environ=environ(bin_dir, record),
        collect=healthy, log=lines.append,
    )
    skips = {c.name: c for c in result.checks if c.verdict is Verdict.SKIP}
    assert set(skips) == {"kubectl-ai: health", "kagent: health", "gordon: health"}
    assert "github.com/GoogleCloudPlatform/kubectl-ai" in skips["kubectl-ai: health"].evidence
    assert "kubectl krew install ai" in skips["kubectl-ai: health"].evidence
    assert "brew install kagent" in skips["kagent: health"].evidence
    assert "inv aiops --install-kagent" in skips["kagent: health"].evidence
    assert "Docker Desktop 4.38+" in skips["gordon: health"].evidence
    assert "no `docker ai` command" in skips["gordon: health"].evidence
    assert all("\n" not in c.evidence for c in skips.values())
    assert [ln for ln in lines if "not found" in ln] == []  # the gate's rows say it, once
    assert result.passed
    assert [c.verdict for c in result.checks if c.name == "doctor"] == [Verdict.PASS]
    assert {t["status"] for t in result.details["tools"]} == {"missing"}
    assert calls(record) == []


def test_found_tools_answer_and_a_failing_one_is_only_a_warning(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai", "kagent", "docker")
    loaded = settings_for(tmp_path, **WITH_KEY)
    runner, log = recording_runner(loaded)
    result = stage.run(
        loaded, "health", runner=runner,
        environ=environ(bin_dir, record, kagent="stderr_error"),
        collect=healthy, log=lambda _: None,
    )
    verdicts = {c.name: c.verdict for c in result.checks}
    assert verdicts["kubectl-ai: health"] is Verdict.PASS
    assert verdicts["gordon: health"] is Verdict.PASS
    assert verdicts["kagent: health"] is Verdict.WARN
    kagent_check = next(c for c in result.checks if c.name == "kagent: health")
    assert "agent kagent/k8s-agent not found" in kagent_check.evidence
    assert result.passed, "an AI tool never fails the gate"
    tools = result.details["tools"]
    assert len([t for t in tools if t["tool"] == "kubectl-ai"]) == 2  # two health prompts
    assert all(t["output"] or t["error_tail"] for t in tools)
    stored = json.dumps(result.to_dict())
    assert KEY not in stored and all(KEY not in line for line in log)
    assert not any(c["argv"][:2] == ["kagent", "install"] for c in calls(record))


def test_install_kagent_only_when_asked(tmp_path: Path, bin_dir: Path, record: Path) -> None:
    install(bin_dir, "kagent")
    loaded = settings_for(tmp_path, **WITH_KEY)
    runner, _ = recording_runner(loaded)
    result = stage.run(
        loaded, "doctor", install_kagent=True, runner=runner,
        environ=environ(bin_dir, record), collect=healthy, log=lambda _: None,
    )
    [call] = calls(record)
    assert call["argv"] == ["kagent", "install", "--profile", "demo"]
    assert call["env"]["OPENAI_API_KEY"] == KEY
    assert {c.name: c.verdict for c in result.checks}["kagent: install"] is Verdict.PASS


def test_scale_refuses_without_allow_changes_before_running_anything(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai", "kagent", "docker")
    loaded = settings_for(tmp_path)
    collected: list[str] = []

    def collect(settings: Any, namespace: str) -> Snapshot:
        collected.append(namespace)
        return Snapshot(namespace=namespace)

    with pytest.raises(PlaybookRefused, match="--allow-changes"):
        stage.run(loaded, "scale", replicas=3, environ=environ(bin_dir, record),
                  collect=collect, log=lambda _: None)
    with pytest.raises(PlaybookRefused, match="--replicas"):
        stage.run(loaded, "scale", allow_changes=True, environ=environ(bin_dir, record),
                  collect=collect, log=lambda _: None)
    assert calls(record) == [] and collected == []

    runner, _ = recording_runner(loaded)
    stage.run(loaded, "scale", replicas=3, allow_changes=True, runner=runner,
              environ=environ(bin_dir, record), collect=collect, log=lambda _: None)
    kubectl_ai = [c["argv"] for c in calls(record) if c["tool"] == "kubectl-ai"]
    assert kubectl_ai == [[
        "kubectl-ai", "--quiet", "--skip-permissions",
        (
            "Scale the Deployment todo-chatbot-backend in namespace todo to 3 replicas, wait "
            "until the new replicas are Ready, and report the final ready/desired count. "
            "Change nothing else."
        ),
    ]]


def test_dockerfiles_playbook_goes_to_gordon_only(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    install(bin_dir, "kubectl-ai", "kagent", "docker")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "backend.Dockerfile").write_text("FROM python:3.12-slim\nUSER 10001\n")
    loaded = settings_for(tmp_path)
    runner, _ = recording_runner(loaded)
    result = stage.run(loaded, "dockerfiles", runner=runner, environ=environ(bin_dir, record),
                       collect=healthy, log=lambda _: None)
    tools_called = {c["tool"] for c in calls(record)}
    assert tools_called == {"docker"}
    argv = calls(record)[-1]["argv"]
    assert argv[:4] == ["docker", "ai", "-C", str(tmp_path)]
    # Gordon reads the file itself in the project directory: named, not pasted.
    assert "docker/backend.Dockerfile" in argv[4] and "USER 10001" not in argv[4]
    assert {c.name for c in result.checks} >= {"gordon: dockerfiles", "doctor"}


def test_doctor_findings_fail_the_gate_even_when_tools_pass(
    tmp_path: Path, bin_dir: Path, record: Path
) -> None:
    loaded = settings_for(tmp_path)

    def broken(settings: Any, namespace: str) -> Snapshot:
        service = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "nothing"}}}
        return Snapshot(namespace=namespace, services=[service])

    result = stage.run(loaded, "doctor", collect=broken, log=lambda _: None)
    assert not result.passed
    [failure] = result.failures
    assert failure.name == "Service without endpoints: Service/web"
    assert result.details["findings"][0]["object"] == "Service/web"
