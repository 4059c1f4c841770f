"""Settings through the real CLI: bad values stop every task with exit 2, secrets never show.

Each run is a subprocess of `inv` from the repository root, isolated from the
developer's own `.env`/`.env.secrets`/`.state` by TODO_DEPLOY_ROOT (a temp dir)
and from their environment by dropping every settings key first.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from todo_deploy.config import GENERATED_SECRETS, SECRETS_FILE_NAME, Settings, Source, load_settings

REPO = Path(__file__).resolve().parents[2]
SETTING_KEYS = {name.upper() for name in Settings.model_fields}

SCRATCH_TASKS = '''"""Collection used by the tests until tasks.py collects todo_deploy.cli.build."""
from invoke import Collection

from todo_deploy.cli import build, core

ns = Collection()
for module in (core, build):
    for task_obj in module.__dict__.values():
        if hasattr(task_obj, "body") and getattr(task_obj, "__module__", "") == module.__name__:
            ns.add_task(task_obj)
'''


def _clean_env(root: Path, overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_KEYS}
    env.update(
        TODO_DEPLOY_ROOT=str(root),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        COLUMNS="200",
        NO_COLOR="1",
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def inv_prefix(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`python -m invoke`, with the repo's tasks.py when it has `build`, else a scratch collection."""
    base = [sys.executable, "-m", "invoke"]
    root = tmp_path_factory.mktemp("list-root")
    listed = subprocess.run(
        [*base, "--list"], check=False, cwd=REPO, env=_clean_env(root, {}), capture_output=True, text=True,
        timeout=60,
    )
    if listed.returncode == 0 and any(
        line.split()[:1] == ["build"] for line in listed.stdout.splitlines()
    ):
        return base
    scratch = tmp_path_factory.mktemp("scratch-tasks")
    (scratch / "tasks.py").write_text(SCRATCH_TASKS)
    return [*base, "--search-root", str(scratch)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A settings root with an empty .env: only the test's overrides apply."""
    (tmp_path / ".env").write_text("")
    return tmp_path


def run_inv(
    prefix: list[str], root: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *args], check=False, cwd=REPO, env=_clean_env(root, env or {}), capture_output=True,
        text=True, timeout=120,
    )


BAD_SETTINGS = [
    # (overrides, key named in the message, value as shown, what is allowed)
    ({"CLUSTER_PROVIDER": "kubeadm"}, "CLUSTER_PROVIDER", "'kubeadm'", "'minikube', 'kind'"),
    ({"LLM_PROVIDER": "gpt"}, "LLM_PROVIDER", "'gpt'", "'auto', 'openai' or 'offline'"),
    ({"BACKEND_REPLICAS": "0"}, "BACKEND_REPLICAS", "'0'", "greater than or equal to 1"),
    ({"FRONTEND_REPLICAS": "-1"}, "FRONTEND_REPLICAS", "'-1'", "greater than or equal to 1"),
    ({"BACKEND_REPLICAS": "two"}, "BACKEND_REPLICAS", "'two'", "valid integer"),
    ({"NAMESPACE": "Todo_App"}, "NAMESPACE", "'Todo_App'", "must be a DNS label"),
    ({"MINIKUBE_MEMORY": "lots"}, "MINIKUBE_MEMORY", "'lots'", "such as 4096 (MiB), 4096m or 4g"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "'***'", "must be a PostgreSQL URL"),
    ({"DATABASE_MODE": "external"}, "DATABASE_MODE=external", "", "needs DATABASE_URL"),
    ({"BACKEND_IMAGE_BUDGET_MB": "-5"}, "BACKEND_IMAGE_BUDGET_MB", "'-5'", "greater than 0"),
    ({"AUTH_SECRET": "short-secret"}, "AUTH_SECRET", "'***'", "at least 16 characters"),
    ({"SESSION_SECRET": "x" * 15}, "SESSION_SECRET", "'***'", "at least 16 characters"),
    ({"PROXY_SECRET": "x" * 15}, "PROXY_SECRET", "'***'", "at least 16 characters"),
]


@pytest.mark.parametrize("command", [["config"], ["build"], ["status"]], ids=" ".join)
@pytest.mark.parametrize(
    ("overrides", "key", "shown", "allowed"), BAD_SETTINGS,
    ids=[f"{k}={v}" for case in BAD_SETTINGS for k, v in case[0].items()],
)
def test_bad_setting_stops_the_task_with_exit_2(
    inv_prefix: list[str], root: Path, command: list[str], overrides: dict[str, str],
    key: str, shown: str, allowed: str,
) -> None:
    done = run_inv(inv_prefix, root, command, overrides)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Invalid settings" in output
    assert f"{key}{'=' + shown if shown else ''}" in output, output
    assert allowed in output, output
    if key == "DATABASE_URL":
        assert "not a url" not in output
    # Nothing was done: no gate state, no image record.
    assert not (root / ".state").exists()


def test_every_problem_is_reported_at_once(inv_prefix: list[str], root: Path) -> None:
    done = run_inv(inv_prefix, root, ["config"], {"NAMESPACE": "A", "BACKEND_REPLICAS": "two"})
    assert done.returncode == 2
    assert "NAMESPACE='A'" in done.stderr and "BACKEND_REPLICAS='two'" in done.stderr


SECRETS = {
    "AUTH_SECRET": "sekret-AUTH-1234567890",
    "SESSION_SECRET": "sekret-SESSION-1234567890",
    "PROXY_SECRET": "sekret-PROXY-1234567890",
    "POSTGRES_PASSWORD": "sekret-PGPASS-1234567890",
    "OPENAI_API_KEY": "sk-sekret-OPENAI-1234567890",
    "DATABASE_URL": "postgresql://todo:sekret-DBURL-1234567890@db.internal:5432/todo",
}
MARKERS = ["sekret-AUTH", "sekret-SESSION", "sekret-PROXY", "sekret-PGPASS", "sekret-OPENAI", "sekret-DBURL"]


@pytest.mark.parametrize(
    ("args", "extra", "code"),
    [
        (["config"], {}, 0),
        (["config", "--json"], {}, 0),
        (["status"], {}, 0),
        (["build", "--help"], {}, 0),
        (["config"], {"BACKEND_REPLICAS": "two"}, 2),
        (["build"], {"NAMESPACE": "Not_A_Label"}, 2),
        (["config"], {"DATABASE_URL": "mysql://todo:sekret-DBURL-1234567890@db/todo"}, 2),
    ],
    ids=["config", "config-json", "status", "build-help", "config-fails", "build-fails",
         "bad-secret-value"],
)
def test_secrets_never_appear_in_output(
    inv_prefix: list[str], root: Path, args: list[str], extra: dict[str, str], code: int
) -> None:
    done = run_inv(inv_prefix, root, args, {**SECRETS, **extra})
    output = done.stdout + done.stderr
    assert done.returncode == code, output
    for marker in MARKERS:
        assert marker not in output, f"{marker} leaked by `inv {' '.join(args)}`"
    if args == ["config", "--json"]:
        shown = json.loads(done.stdout)
        for key in SECRETS:
            assert shown[key] == {"value": "***", "source": "environment"}


def test_secrets_set_in_dotenv_are_masked_too(inv_prefix: list[str], root: Path) -> None:
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    done = run_inv(inv_prefix, root, ["config", "--json"])
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    for key in SECRETS:
        assert shown[key] == {"value": "***", "source": ".env"}
    for marker in MARKERS:
        assert marker not in done.stdout + done.stderr


def test_sources_are_reported_right(inv_prefix: list[str], root: Path) -> None:
    (root / ".env").write_text("NAMESPACE=from-dotenv\nBACKEND_REPLICAS=3\nDATABASE_MAX_CONNECTIONS=200\n")
    done = run_inv(inv_prefix, root, ["config", "--json"], {"BACKEND_REPLICAS": "4"})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["NAMESPACE"] == {"value": "from-dotenv", "source": ".env"}
    assert shown["BACKEND_REPLICAS"] == {"value": "4", "source": "environment"}
    assert shown["RELEASE_NAME"] == {"value": "todo-chatbot", "source": "default"}
    for key in GENERATED_SECRETS:
        assert shown[key] == {"value": "***", "source": "generated"}
    assert shown["DATABASE_URL"] == {"value": "(empty)", "source": "default"}


def test_generated_secrets_are_created_once_private_and_stable(tmp_path: Path) -> None:
    first = load_settings(root=tmp_path, environ={})
    path = tmp_path / SECRETS_FILE_NAME
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    second = load_settings(root=tmp_path, environ={})
    assert path.read_text() == content
    for key in GENERATED_SECRETS:
        value = getattr(first.settings, key.lower()).get_secret_value()
        assert len(value) >= 32
        assert getattr(second.settings, key.lower()).get_secret_value() == value
        assert f"{key}={value}" in content
        assert first.sources[key] is Source.GENERATED
    values = [getattr(first.settings, k.lower()).get_secret_value() for k in GENERATED_SECRETS]
    assert len(set(values)) == len(values)


def test_a_set_secret_wins_over_the_generated_one_and_is_not_stored(tmp_path: Path) -> None:
    loaded = load_settings(root=tmp_path, environ={"AUTH_SECRET": SECRETS["AUTH_SECRET"]})
    assert loaded.settings.auth_secret.get_secret_value() == SECRETS["AUTH_SECRET"]
    assert loaded.sources["AUTH_SECRET"] is Source.ENVIRONMENT
    assert "sekret-AUTH" not in (tmp_path / SECRETS_FILE_NAME).read_text()


def test_settings_root_override_isolates_state(tmp_path: Path) -> None:
    loaded = load_settings(environ={"TODO_DEPLOY_ROOT": str(tmp_path)})
    assert loaded.root == tmp_path
    assert loaded.state_dir == tmp_path / ".state"
    assert (tmp_path / SECRETS_FILE_NAME).exists()


def test_an_unknown_dotenv_key_is_reported_with_the_closest_known_one(
    inv_prefix: list[str], root: Path
) -> None:
    (root / ".env").write_text("BACKEND_REPLCIAS=3\nNAMESPACE=ok\nWHATEVER_ELSE=1\n")
    done = run_inv(inv_prefix, root, ["config"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "BACKEND_REPLCIAS (in .env): unknown setting; did you mean BACKEND_REPLICAS?" in done.stderr
    assert "WHATEVER_ELSE (in .env): unknown setting; see .env.example" in done.stderr
    # reported together with the invalid values, not one at a time
    (root / ".env").write_text("BACKEND_REPLCIAS=3\nNAMESPACE=Bad_Label\n")
    done = run_inv(inv_prefix, root, ["config"])
    assert "BACKEND_REPLCIAS" in done.stderr and "NAMESPACE='Bad_Label'" in done.stderr


def test_every_key_in_env_example_is_a_setting(tmp_path: Path) -> None:
    from dotenv import dotenv_values

    keys = set(dotenv_values(REPO / ".env.example"))
    assert keys == SETTING_KEYS, (keys - SETTING_KEYS, SETTING_KEYS - keys)


def test_credentials_inside_a_url_setting_are_masked_and_scrubbed(
    inv_prefix: list[str], root: Path
) -> None:
    url = "https://llm-user:sekret-URLPASS-123@llm.example.test/v1?key=sekret-URLKEY-456&x=1"
    done = run_inv(inv_prefix, root, ["config", "--json"], {"OPENAI_BASE_URL": url})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["OPENAI_BASE_URL"]["value"]
    assert shown == "https://***@llm.example.test/v1?key=***&x=1"
    assert "sekret-URL" not in done.stdout + done.stderr
    loaded = load_settings(root=root, environ={"OPENAI_BASE_URL": url})
    assert {"sekret-URLPASS-123", "sekret-URLKEY-456"} <= set(loaded.settings.secret_values())


def test_the_workflow_refuses_the_secrets_the_apps_refuse() -> None:
    """AUTH_SECRET/SESSION_SECRET/PROXY_SECRET: the same minimum length as the apps' own settings."""
    import todo_api.settings as todo_api_settings
    import todo_web.settings as todo_web_settings
    from pydantic import ValidationError

    from todo_deploy.config import APP_SECRET_MIN_LENGTH
    short, ok = "s" * (APP_SECRET_MIN_LENGTH - 1), "s" * APP_SECRET_MIN_LENGTH
    signing = {"auth_secret": ok, "session_secret": ok, "backend_url": "http://x"}
    for model, field in ((todo_api_settings.Settings, "auth_secret"),
                         (todo_web_settings.Settings, "session_secret"),
                         (todo_api_settings.Settings, "proxy_secret"),
                         (todo_web_settings.Settings, "proxy_secret")):
        with pytest.raises(ValidationError):
            model.model_validate({**signing, field: short})
        model.model_validate({**signing, field: ok})
    for field in ("auth_secret", "proxy_secret"):
        with pytest.raises(ValidationError):
            Settings(**{field: short})  # type: ignore[arg-type]
        Settings(**{field: ok})  # type: ignore[arg-type]
