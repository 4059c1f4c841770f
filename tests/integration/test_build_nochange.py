"""A no-change `inv build` on a real engine: decided without the docker SDK, and an edit
is still seen (on a copy of app/ and docker/, never the real tree)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON_IMAGE
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

SCRIPT = """
import json, sys
from todo_deploy.config import load_settings
from todo_deploy.pipeline import record
from todo_deploy.stages import build
loaded = load_settings()
result = record(loaded, build.run(loaded, log=lambda _: None))  # as `inv build` does
print(json.dumps({"passed": result.passed, "docker_imported": "docker" in sys.modules,
                  "images": {k: [v["ref"], v["skipped"]] for k, v in result.details["images"].items()}}))
"""


def _age(root: Path) -> None:
    old = time.time() - 120
    for path in root.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)


def test_no_change_build_skips_without_the_sdk_and_an_edit_is_seen(
    tmp_path: Path, docker_engine: None
) -> None:
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv", "*.egg-info")
    shutil.copytree(ROOT / "docker", root / "docker", ignore=ignore)
    shutil.copytree(ROOT / "app", root / "app", ignore=ignore)  # both apps, common/, .dockerignore
    _age(root)
    env = {**os.environ, "TODO_DEPLOY_ROOT": str(root), "PYTHON_BASE_IMAGE": PYTHON_IMAGE,
           "CLUSTER_PROVIDER": "existing"}

    def build() -> dict:
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        # The script's result line; the build's clean-up of old tags may print after it.
        return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))

    first = build()
    assert first["passed"] and first["docker_imported"]
    second = build()
    assert second["passed"] and not second["docker_imported"], second
    assert second["images"] == {k: [ref, True] for k, (ref, _) in first["images"].items()}

    edited = root / "app/backend/todo_api/__init__.py"
    edited.write_text(edited.read_text() + "# an edit\n")
    third = build()
    assert third["passed"] and third["docker_imported"]
    assert third["images"]["backend"][0] != first["images"]["backend"][0]
    assert third["images"]["frontend"] == [first["images"]["frontend"][0], True]
