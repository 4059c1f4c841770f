"""Profiles (issue 23, item 1): `.env.NAME` over `.env`, VALUES_FILES over the workflow's
chart values, and the wrong-cluster guard; through load_settings and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import Exit

from todo_deploy.chart import manifests, values_check
from todo_deploy.chart import values as chart_values
from todo_deploy.cli import context_guard
from todo_deploy.config import (
    LoadedSettings,
    ProfileError,
    Settings,
    SettingsError,
    Source,
    load_settings,
    profiles,
)

REPO = Path(__file__).resolve().parents[2]
SETTING_KEYS = {name.upper() for name in Settings.model_fields}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write(tmp_path / ".env", "BACKEND_REPLICAS=1\nFRONTEND_REPLICAS=3\nLLM_MODEL=from-dotenv\n")
    _write(tmp_path / ".env.cloud", "FRONTEND_REPLICAS=4\nLLM_MODEL=from-profile\n"
           "KUBE_CONTEXT=cloud-ctx\n")
    return tmp_path


# --- layering -------------------------------------------------------------------


def test_profile_sits_between_dotenv_and_the_environment(root: Path) -> None:
    loaded = load_settings(root, environ={"LLM_MODEL": "from-env"}, profile="cloud")
    s, sources = loaded.settings, loaded.sources
    assert (s.backend_replicas, sources["BACKEND_REPLICAS"]) == (1, Source.DOTENV)
    assert (s.frontend_replicas, sources["FRONTEND_REPLICAS"]) == (4, ".env.cloud")
    assert (s.llm_model, sources["LLM_MODEL"]) == ("from-env", Source.ENVIRONMENT)
    assert sources["NAMESPACE"] == Source.DEFAULT
    assert loaded.profile == "cloud"


def test_todo_profile_in_the_environment_selects_it_and_no_profile_ignores_the_file(
    root: Path,
) -> None:
    chosen = load_settings(root, environ={"TODO_PROFILE": "cloud"})
    assert (chosen.profile, chosen.settings.frontend_replicas) == ("cloud", 4)
    plain = load_settings(root, environ={})
    assert (plain.profile, plain.settings.frontend_replicas) == ("", 3)
    assert plain.sources["FRONTEND_REPLICAS"] == Source.DOTENV


def test_a_missing_profile_is_one_line_naming_the_file_and_the_profiles(root: Path) -> None:
    _write(root / ".env.staging", "")
    _write(root / ".env.prod.example", "")
    with pytest.raises(ProfileError) as caught:
        load_settings(root, environ={}, profile="prod")
    line = str(caught.value)
    assert "\n" not in line
    assert str(root / ".env.prod") in line and "profiles here: cloud, staging" in line
    assert "copy .env.prod.example to .env.prod" in line


def test_the_secrets_file_is_no_profile(root: Path) -> None:
    load_settings(root, environ={})  # writes .env.secrets
    assert profiles.available(root) == ["cloud"]
    with pytest.raises(ProfileError, match="not a profile name"):
        load_settings(root, environ={}, profile="secrets")


def test_an_unknown_key_in_a_profile_names_the_profile_file(root: Path) -> None:
    _write(root / ".env.cloud", "BACKEND_REPLICA=2\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(root, environ={}, profile="cloud")
    assert caught.value.problems == [
        "BACKEND_REPLICA (in .env.cloud): unknown setting; did you mean BACKEND_REPLICAS?"
    ]


# --- the real CLI ---------------------------------------------------------------


def _inv(root: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTING_KEYS and k != "TODO_PROFILE"}
    clean.update(TODO_DEPLOY_ROOT=str(root), COLUMNS="200", NO_COLOR="1",
                 PYTHONPATH=str(REPO) + os.pathsep + clean.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)


def test_inv_config_with_the_flag_and_with_the_variable_shows_the_profile_file(root: Path) -> None:
    for args, env in ((["config", "--json", "--profile", "cloud"], {}),
                      (["config", "--json"], {"TODO_PROFILE": "cloud"})):
        done = _inv(root, args, env)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["FRONTEND_REPLICAS"] == {"value": "4", "source": ".env.cloud"}
        assert shown["BACKEND_REPLICAS"] == {"value": "1", "source": ".env"}
    table = _inv(root, ["config", "--profile", "cloud"])
    assert "profile cloud" in table.stdout and ".env.cloud" in table.stdout


def test_inv_with_a_missing_profile_exits_2_with_one_line(root: Path) -> None:
    done = _inv(root, ["config", "--profile", "nope"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"profile 'nope': {root / '.env.nope'} does not exist (profiles here: cloud)"
    ]


def test_every_task_takes_the_flag_without_a_short_one() -> None:
    from todo_deploy.cli import task_modules, tasks_of

    for module in task_modules():
        for found in tasks_of(module):
            flags = {n for a in found.get_arguments() for n in a.names if "profile" in a.names}
            assert flags == {"profile"}, found.name


# --- VALUES_FILES -----------------------------------------------------------------

FIRST = """backend:
  podAnnotations: {team: first, layer: first}
  resources: {limits: {cpu: "1", memory: 300Mi}}
"""
SECOND = """backend:
  podAnnotations: {layer: second}
"""


def _deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def test_values_files_layer_in_order_into_both_paths(root: Path) -> None:
    _write(root / "values" / "first.yaml", FIRST)
    _write(root / "values" / "second.yaml", SECOND)
    env = {"VALUES_FILES": "values/first.yaml, values/second.yaml"}
    settings = load_settings(root, environ=env).settings
    images = chart_values.default_images()
    raw = manifests.render_manifests(settings, images)
    helm = manifests.render_objects(chart_values.helm_values(settings, images), settings.release_name,
                                    settings.namespace, chart_values.CHART_DIR)
    for objects in (raw, helm):
        pod = _deployment(objects, "todo-chatbot-backend")["spec"]["template"]
        assert pod["metadata"]["annotations"]["team"] == "first"
        assert pod["metadata"]["annotations"]["layer"] == "second"  # the later file wins
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["memory"] == "300Mi"
        # ... and what the workflow sets stays the workflow's
        assert _deployment(objects, "todo-chatbot-backend")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backend:\n  image: {tag: latest}\n",
         "sets backend.image.tag, which the workflow sets from its settings: the workflow owns it"),
        ("backend:\n  replicaCount: 9\n",
         ("sets backend.replicaCount, which the workflow sets from its settings: set "
          "BACKEND_REPLICAS instead")),
        ("secrets:\n  existingSecret: {backend: mine}\n", "sets secrets.existingSecret.backend"),
        ("fullnameOverride: other\n", "sets fullnameOverride"),
        ("namespace: {create: false}\n", "sets namespace.create"),
        ("dev: {enabled: true}\n", ("sets dev.enabled, which the workflow sets from its settings: "
                                    "set `inv watch --dev` / `inv up --dev` instead")),
        ("backend:\n  bogus: 1\n", ("is rejected by the chart's schema: backend: Additional "
                                   "properties are not allowed ('bogus' was unexpected)")),
        ("- a list\n", "cannot be read as chart values: is not a map of chart values"),
    ],
    ids=["image tag", "replicas", "secret name", "fullnameOverride", "namespace", "dev mode", "schema",
         "list"],
)
def test_a_values_file_the_chart_or_the_workflow_cannot_take_is_refused_by_name(
    root: Path, text: str, expected: str
) -> None:
    _write(root / "bad.yaml", text)
    with pytest.raises(SettingsError) as caught:
        values_check.load_checked(root, environ={"VALUES_FILES": "bad.yaml"})
    assert any(p.startswith("VALUES_FILES: bad.yaml ") and expected in p
               for p in caught.value.problems), caught.value.problems


def test_a_missing_values_file_is_refused_by_name(root: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        values_check.load_checked(root, environ={"VALUES_FILES": "gone.yaml"})
    assert caught.value.problems == [f"VALUES_FILES: gone.yaml does not exist ({root / 'gone.yaml'})"]


# --- the context guard ------------------------------------------------------------


def test_a_profile_refuses_a_context_other_than_its_own(root: Path) -> None:
    loaded = load_settings(root, environ={"KUBE_CONTEXT": "minikube"}, profile="cloud")
    reason = profiles.context_refusal(loaded, current="")
    assert reason is not None
    assert "'cloud-ctx'" in reason and "'minikube'" in reason and "environment" in reason
    with pytest.raises(Exit) as refused:
        context_guard(loaded, force=False)
    assert refused.value.code == 1 and "--force" in str(refused.value.message)
    context_guard(loaded, force=True)  # --force passes
    assert profiles.context_refusal(load_settings(root, environ={}, profile="cloud"), "") is None


def test_other_settings_are_refused_on_a_profiles_context(root: Path) -> None:
    _write(root / ".env", "CLUSTER_PROVIDER=existing\n")
    loaded = load_settings(root, environ={})
    reason = profiles.context_refusal(loaded, current="cloud-ctx")
    assert reason is not None and "belongs to profile cloud" in reason
    assert "--profile cloud" in reason
    assert profiles.context_refusal(loaded, current="kind-dev") is None


def test_inv_deploy_and_up_refuse_the_wrong_cluster_before_anything_runs(root: Path) -> None:
    for command in (["deploy"], ["up"]):
        done = _inv(root, [*command, "--profile", "cloud"], {"KUBE_CONTEXT": "minikube"})
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "refusing to deploy: profile cloud (.env.cloud) deploys to context 'cloud-ctx'" \
            in done.stderr, done.stderr
        assert "stage 1" not in done.stdout  # `inv up` built nothing


# --- the shipped cloud profile --------------------------------------------------------


@pytest.fixture
def cloud(tmp_path: Path) -> LoadedSettings:
    _write(tmp_path / ".env", "")
    shutil.copy(REPO / ".env.cloud.example", tmp_path / ".env.cloud")
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    return load_settings(tmp_path, environ={}, profile="cloud")


def test_the_cloud_example_profile_loads_with_hpa_and_pdb_and_lints_clean(
    cloud: LoadedSettings,
) -> None:
    from todo_deploy.stages import lint

    assert cloud.sources["VALUES_FILES"] == ".env.cloud"
    values = chart_values.raw_values(cloud.settings, chart_values.default_images())
    assert values["backend"]["autoscaling"]["enabled"] and values["backend"]["pdb"]["enabled"]
    result = lint.run(cloud, k8s_dir=REPO / "k8s", chart_dir=chart_values.CHART_DIR,
                      docker_dir=REPO / "docker", log=lambda _: None)
    assert result.passed, [(c.name, c.evidence) for c in result.failures]
    settings_target = next(c for c in result.checks
                           if c.name == "schema chart (settings values) (k8s 1.30, strict)")
    assert "HorizontalPodAutoscaler" in settings_target.evidence
    assert "PodDisruptionBudget" in settings_target.evidence
