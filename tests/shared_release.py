"""The cluster tier's one shared release: a deployment of the app that the tests which leave
it as they found it share (verify's journey and its disruptive checks, the MCP tools, the
secrets scan, the drills for pod loss, a database restart and a rolling update, the docs
report). Session scope: it is made once, on the first test that asks for it, and every test
that asks for it is in one xdist group (tests/conftest.py `cluster_group`), so one worker
makes it and runs them one after the other.

It is deployed through the project's own stages (`todo_deploy.images.ensure_built`,
`todo_deploy.stages.raw_deploy.run`, the gate recorded as the CLI records it) into a scratch
namespace with CLUSTER_PROVIDER=existing, 2 backend and 2 frontend replicas behind a
NodePort, and recognisable generated secrets (for the secrets scan), from a private copy
of the sources (so the rolling-update drill can change the backend without touching the
repository). The namespace is deleted afterwards without waiting; its volume goes with
its claim.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.client import WebClient
from bench.stack import Stack
from todo_deploy.gates import GateResult, load

FIXTURE = "shared_release"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class SharedRelease:
    stack: Stack
    secret_values: dict[str, str]
    output: list[str] = field(default_factory=list)  # everything the stages printed

    def web(self) -> WebClient:
        web = WebClient(self.stack.service_url("frontend"), timeout=15)
        # Right after a deploy the Service can refuse a moment longer (kube-proxy catching up
        # with the new endpoints on a busy node): wait for it, bounded.
        deadline = time.monotonic() + 30
        while True:
            try:
                web.signup()
                return web
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


@pytest.fixture(scope="session")
def shared_release(docker_engine: None, kube_cluster: None) -> Iterator[SharedRelease]:
    from todo_deploy.pipeline import record

    output: list[str] = []
    values = {
        "AUTH_SECRET": "drillAuthSecret" + secrets.token_hex(16),
        "SESSION_SECRET": "drillSessionSecret" + secrets.token_hex(16),
        "POSTGRES_PASSWORD": "drillPgPassword" + secrets.token_hex(16),
        "OPENAI_API_KEY": "",
    }
    # DRILL_PREFIX: the scratch namespace's prefix (a shared cluster gives each user one).
    prefix = os.environ.get("DRILL_PREFIX", "shared")
    stack = Stack.scratch(f"{prefix}-{os.getpid() % 10000}", log=output.append,
                          BACKEND_REPLICAS="2", FRONTEND_REPLICAS="2",
                          FRONTEND_SERVICE_TYPE="NodePort", **values)
    stack.release = os.environ.get("DRILL_RELEASE", "shared")
    stack.private_source()
    try:
        stack.up()
        assert stack.last_deploy is not None
        record(stack.loaded(), stack.last_deploy)  # as the CLI does: status, verify and docs read it
        yield SharedRelease(stack, {k: v for k, v in values.items() if v}, output)
    finally:
        from todo_deploy.access import app_url

        app_url.stop(stack.root / ".state")
        stack.down(wait=False)


@dataclass
class FullRun:
    """One `inv up --full` on the shared release, run as a user runs it: what it printed,
    its exit status, and the verify gate it recorded."""

    printed: bytes
    returncode: int
    verify: GateResult | None


@pytest.fixture(scope="session")
def full_inv_up(shared_release: SharedRelease) -> FullRun:
    """Made once and asserted on twice: the secrets scan reads all it printed and wrote, and
    test_verify its verify gate (the journey and every disruptive check through the NodePort),
    so the cluster tier runs that verify once, not once in-process and again in `inv up`."""
    stack = shared_release.stack
    env = {**os.environ, **stack.environ, "TODO_DEPLOY_ROOT": str(stack.root)}
    run = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "up", "--full"],
                         env=env, capture_output=True, timeout=540, check=False)
    return FullRun(run.stdout + run.stderr, run.returncode, load(stack.root / ".state", "verify"))
