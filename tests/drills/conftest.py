"""One deployment of the app shared by the cluster drills (package scope: it is removed
as soon as the drills are done, before the rest of the suite runs).

It is deployed through the project's own stages (`todo_deploy.images.ensure_built`,
`todo_deploy.stages.deploy.run`) into a scratch namespace with CLUSTER_PROVIDER=existing,
2 backend replicas and recognisable generated secrets (for the secrets scan), from a
private copy of the sources (so the rolling-update drill can change the backend without
touching the repository). The namespace is deleted afterwards, without waiting for it to
vanish (its volume goes with its claim: the cluster's provisioner).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from bench.client import WebClient
from bench.stack import Stack


@dataclass
class DrillStack:
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


@pytest.fixture(scope="package")
def drill_stack(docker_engine: None, kube_cluster: None) -> Iterator[DrillStack]:
    output: list[str] = []
    values = {
        "AUTH_SECRET": "drillAuthSecret" + secrets.token_hex(16),
        "SESSION_SECRET": "drillSessionSecret" + secrets.token_hex(16),
        "POSTGRES_PASSWORD": "drillPgPassword" + secrets.token_hex(16),
        "OPENAI_API_KEY": "",
    }
    # DRILL_PREFIX: the scratch namespace's prefix (a shared cluster gives each user one).
    prefix = os.environ.get("DRILL_PREFIX", "drill")
    stack = Stack.scratch(f"{prefix}-{os.getpid() % 10000}", log=output.append,
                          BACKEND_REPLICAS="2", FRONTEND_REPLICAS="1", **values)
    stack.release = os.environ.get("DRILL_RELEASE", "drill")
    stack.private_source()
    try:
        stack.up()
        yield DrillStack(stack, {k: v for k, v in values.items() if v}, output)
    finally:
        stack.down(wait=False)  # its volume goes with its claim
