"""Shared test plumbing.

Tests that need an outside resource (Docker, the cluster, PostgreSQL, a browser)
ask for it through `require(...)`. Locally a missing resource skips the test;
in CI (`TODO_REQUIRE_ALL=1`, set by `.ci/run`) it fails instead, so a skip can
never be counted as a pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from urllib.parse import urlparse

import pytest

REQUIRE_ALL = os.environ.get("TODO_REQUIRE_ALL") == "1"

# The images a user's first run uses: the settings' defaults (public names, pulled
# when missing), unless the environment names others as it would for `inv`.
PYTHON_IMAGE = os.environ.get("PYTHON_BASE_IMAGE") or "python:3.11-slim"
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE") or "postgres:15"


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (CI) when a resource the test needs is missing."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required in CI (TODO_REQUIRE_ALL=1) but is not available")
    pytest.skip(f"{what} not available")


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False


def cluster_available() -> bool:
    if not shutil.which("kubectl"):
        return False
    result = subprocess.run(
        ["kubectl", "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    return result.returncode == 0


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL from TEST_DATABASE_URL (started by .ci/run locally)."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    parsed = urlparse(url) if url else None
    ok = bool(parsed and parsed.hostname and _tcp_open(parsed.hostname, parsed.port or 5432))
    require(ok, f"PostgreSQL at TEST_DATABASE_URL ({'set' if url else 'unset'})")
    return url


@pytest.fixture(scope="session")
def docker_engine() -> None:
    require(docker_available(), "a Docker engine")


@pytest.fixture(scope="session")
def kube_cluster() -> None:
    require(cluster_available(), "a Kubernetes cluster (kubectl context)")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    require(bool(path) and bool(shutil.which("chromedriver")), "Chromium and chromedriver")
    return path


def _recycle_volumes() -> None:
    from tests.volumes import recycle

    if shutil.which("kubectl") and cluster_available():
        recycle()


def pytest_sessionstart(session: pytest.Session) -> None:
    _recycle_volumes()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _recycle_volumes()
