"""`inv mcp` for real: the official MCP client (stdio and streamable HTTP) against a
scratch deployment on the test cluster, and `inv aiops install-agent` against a
cluster where kagent's CRDs are applied (then removed: they are cluster-scoped).

Everything made here is named h4-*.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.integration.conftest import ROOT, Scratch, poll_until
from tests.shared_release import SharedRelease
from todo_deploy.config import LoadedSettings
from todo_deploy.kube import Kube, KubeError
from todo_deploy.mcp import calls, kagent

pytestmark = pytest.mark.cluster

PREFIX = "h4-"
FIXTURES = ROOT / "tests" / "fixtures" / "kagent"
Steps = list[tuple[str, dict[str, Any]]]


def _mine(s: Scratch) -> Scratch:
    """Rename a scratch deployment into this helper's h4- prefix."""
    suffix = uuid.uuid4().hex[:6]
    s.namespace, s.release = f"{PREFIX}{suffix}", f"{PREFIX}{suffix}"
    s.env.update(NAMESPACE=s.namespace, RELEASE_NAME=s.release)
    return s


def server_env(s: Scratch, **extra: str) -> dict[str, str]:
    return {**os.environ, **s.env, "TODO_DEPLOY_ROOT": str(s.root), **extra}


def stdio(s: Scratch, *flags: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "invoke", "--search-root", str(ROOT), "mcp", *flags],
        env=server_env(s), cwd=str(ROOT))


async def _calls(client: ClientSession, steps: Steps) -> tuple[list[str], list[Any]]:
    await client.initialize()
    names = [t.name for t in (await client.list_tools()).tools]
    return names, [await client.call_tool(name, args) for name, args in steps]


def over_stdio(params: StdioServerParameters, steps: Steps) -> tuple[list[str], list[Any]]:
    async def go() -> tuple[list[str], list[Any]]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            return await _calls(client, steps)

    return asyncio.run(go())


def over_http(url: str, steps: Steps) -> tuple[list[str], list[Any]]:
    async def go() -> tuple[list[str], list[Any]]:
        async with streamable_http_client(url) as (read, write), \
                ClientSession(read, write) as client:
            return await _calls(client, steps)

    return asyncio.run(go())


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, [getattr(c, "text", "") for c in result.content]
    return result.structured_content


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def deployed(shared_release: SharedRelease) -> Iterator[tuple[Scratch, LoadedSettings]]:
    """The cluster tier's shared release (tests/shared_release.py), its deploy gate recorded.
    Whatever the test leaves changed by hand (the database at 0, an extra backend pod) is put
    back afterwards by a raw_deploy, as a user would, even when the test failed half-way."""
    from todo_deploy.stages import raw_deploy

    stack = shared_release.stack
    s = Scratch.existing(stack.root, stack.environ)
    yield s, s.settings()
    restored = raw_deploy.run(s.settings(), log=lambda _: None)
    assert restored.passed, [(c.name, c.evidence) for c in restored.failures]


def _scale_database(loaded: LoadedSettings, replicas: int) -> None:
    kube = Kube(loaded.settings.context_name)
    name = f"{loaded.settings.release_name}-postgres"
    kube.request("PATCH", f"/apis/apps/v1/namespaces/{loaded.settings.namespace}/statefulsets/"
                 f"{name}/scale", body={"spec": {"replicas": replicas}},
                 content_type="application/merge-patch+json")


def test_the_tools_through_the_official_client(
        deployed: tuple[Scratch, LoadedSettings], tmp_path: Path) -> None:
    s, loaded = deployed

    # Read-only over stdio: every read tool, a verify subset, a refused deploy.
    names, results = over_stdio(stdio(s), [
        ("status", {}),
        ("verify", {"only": ["backend-readiness", "no-restarts", "image-identity"]}),
        ("logs", {"component": "backend", "lines": 5}),
        ("app_url", {}),
        ("config", {}),
        ("deploy", {}),
    ])
    assert set(names) == {"status", "doctor", "verify", "logs", "app_url", "config",
                          "deploy", "rollback", "scale"}
    status, verify, logs, app, config, refused = results
    gates = {g["stage"]: g for g in ok(status)["gates"]}
    assert gates["deploy"]["state"] == "pass"
    assert ok(status)["target"].endswith(f"/{s.namespace}/{s.release}")
    verified = ok(verify)
    assert verified["passed"], verified["checks"]
    assert {c["name"] for c in verified["checks"]} >= {"access", "backend-readiness",
                                                      "no-restarts"}
    assert verified["left_out_read_only"] == []  # not asked for
    lines = ok(logs)["lines"]
    assert 0 < len(lines) <= 5 and {line["component"] for line in lines} <= {
        "backend", "event", "restart"}
    assert ok(app)["answers"] is True and ok(app)["url"].startswith("http://")
    settings = {r["key"]: r["value"] for r in ok(config)["settings"]}
    assert settings["NAMESPACE"] == s.namespace and settings["AUTH_SECRET"] == "***"
    assert refused.is_error
    assert "--allow-changes" in refused.content[0].text

    # Changes allowed, over streamable HTTP on a loopback port: scale the backend up by one
    # (the deploy at the end puts the configured count back).
    replicas = loaded.settings.backend_replicas
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "mcp", "--http",
         "--port", str(port), "--allow-changes"],
        env=server_env(s), cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.3)
        _, (scaled,) = over_http(f"http://127.0.0.1:{port}/mcp",
                                 [("scale", {"component": "backend", "replicas": replicas + 1})])
    finally:
        server.terminate()
        server.wait(20)
    out = ok(scaled)
    assert (out["before"], out["replicas"], out["ready"]) == (replicas, replicas + 1, replicas + 1), out
    dep = Kube(loaded.settings.context_name).get(
        "apps/v1", "Deployment", f"{s.release}-backend", s.namespace)
    assert dep is not None and dep["spec"]["replicas"] == replicas + 1

    # An induced failure: the database scaled to 0. The doctor (read-only, stdio) names
    # the cause first; the backend's failing readiness and the Services without a ready
    # pod are folded under it.
    _scale_database(loaded, 0)
    cause = f"StatefulSet/{s.release}-postgres"
    because = "the backend's /ready fails because the database is down"

    def findings_of(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f for g in groups if g["object"] == cause for f in g["findings"]]

    def doctor_report() -> dict[str, Any]:
        _, (doctor,) = over_stdio(stdio(s), [("doctor", {})])
        return ok(doctor)

    report = poll_until(doctor_report, lambda r: any(
        because in f["evidence"] for f in findings_of(r["groups"])), deadline_s=180)
    groups = report["groups"]
    assert report["healthy"] is False, report
    assert [g["object"] for g in groups] == [cause], groups
    found = findings_of(groups)
    assert len(found) == 1, found
    [finding] = found
    assert finding["kind"] == "scaled to 0" and because in finding["evidence"], finding
    assert f"Service/{s.release}-postgres has no ready endpoint" in finding["evidence"]
    assert "--replicas=1" in finding["fix"]

    # The session a docs reader sees: recorded against this very failure.
    spec = importlib.util.spec_from_file_location("mcp_session", ROOT / "docs" / "mcp_session.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    steps = asyncio.run(module.session(stdio(s)))
    assert [tool for tool, _, _ in steps][:3] == ["status", "doctor", "logs"]
    transcript = module.markdown(steps)
    assert "because the database is down" in transcript
    out_file = os.environ.get("MCP_TRANSCRIPT")
    if out_file:
        Path(out_file).write_text(transcript)

    # Every call is in the log, with its outcome; no secret in it.
    logged = calls.read(loaded.state_dir)
    outcomes = {(e["tool"], e["outcome"]) for e in logged}
    assert {("status", "ok"), ("verify", "ok"), ("logs", "ok"), ("app_url", "ok"),
            ("config", "ok"), ("deploy", "refused"), ("scale", "ok"),
            ("doctor", "ok")} <= outcomes
    log_text = (loaded.state_dir / calls.FILE_NAME).read_text()
    for secret in loaded.settings.secret_values():
        assert secret not in log_text

    # The same failure through `inv aiops doctor`, as a user runs it (this is the suite's
    # one database-at-0 scenario): the cause alone, its consequences folded under it.
    _database_at_zero_through_the_cli(s)
    # `inv deploy` puts back what was changed by hand (server-side apply takes the fields back).
    from todo_deploy.artifacts import load_images
    from todo_deploy.stages import raw_deploy
    from todo_deploy.stages.aiops.stage import doctor_checks

    again = raw_deploy.run(s.settings(), log=print)
    assert again.passed, [(c.name, c.evidence) for c in again.failures]
    # (polled: the second backend pod the MCP scale added drains for a moment after the raw_deploy)
    left = poll_until(lambda: doctor_checks(loaded.settings, s.namespace,
                                            images=load_images(loaded.state_dir))[1],
                      lambda found: found == [], deadline_s=60)
    assert left == [], [f.to_dict() for f in left]
    database = Kube(loaded.settings.context_name).get(
        "apps/v1", "StatefulSet", f"{s.release}-postgres", s.namespace)
    assert database is not None and database["spec"]["replicas"] == 1


def _database_at_zero_through_the_cli(s: Scratch) -> None:
    """Moved from test_broken_deployments (it scaled a second database to 0 for it)."""
    database = f"{s.release}-postgres"
    because = "the backend's /ready fails because the database is down"
    # The backend runs 3 pods here (the MCP scale above): they fail their readiness a few
    # probes apart. Ask once no backend pod is ready, as the folded lines then say.
    kube = Kube(s.settings().settings.context_name)

    def ready_backends() -> int:
        endpoints = kube.get("v1", "Endpoints", f"{s.release}-backend", s.namespace) or {}
        return sum(len(subset.get("addresses") or []) for subset in endpoints.get("subsets") or [])

    assert poll_until(ready_backends, lambda ready: ready == 0, deadline_s=90) == 0
    done = inv(s, "aiops", "doctor", env={"COLUMNS": "220", "NO_COLOR": "1"})
    said = done.stdout + done.stderr
    print("\n==== `inv aiops doctor` with the database StatefulSet at 0 ====\n" + said)
    assert done.returncode == 1, said
    stored = json.loads((s.root / ".state" / "aiops.json").read_text())["details"]["findings"]
    assert [f["object"] for f in stored] == [f"StatefulSet/{database}"], stored
    [cause] = stored
    assert cause["kind"] == "scaled to 0"
    assert cause["evidence"].startswith(f"StatefulSet {database} has 0 replicas; {because}")
    folded = " | ".join(cause["consequences"])
    assert f"pods of Deployment {s.release}-backend: not ready" in folded
    assert "readiness probe http GET :8000/ready answered HTTP 503" in folded
    assert f"Service/{database} has no ready endpoint" in folded
    assert f"Service/{s.release}-backend has no ready endpoint" in folded
    assert "Readiness probe failing" not in said and "Service without endpoints" not in said


# ---- install-agent against kagent's CRDs ------------------------------------------------------


def for_old_clusters(node: Any) -> Any:
    """kagent's CRD as a v1.20 API server takes it: without the CEL rules
    (x-kubernetes-validations, 1.25+) and the empty-string defaults 1.20 refuses
    ("Invalid value: null"). The types, required fields and enums stay."""
    if isinstance(node, dict):
        return {k: for_old_clusters(v) for k, v in node.items()
                if k != "x-kubernetes-validations" and not (k == "default" and v == "")}
    if isinstance(node, list):
        return [for_old_clusters(v) for v in node]
    return node


def _apply_crds(kube: Kube) -> list[str]:
    names = []
    version = kube.server_version()
    old = (int(version["major"]), int(version["minor"].rstrip("+"))) < (1, 25)
    for path in sorted(FIXTURES.glob("kagent.dev_*.yaml")):
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        kube.apply(for_old_clusters(crd) if old else crd)
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in names:
        while time.monotonic() < deadline:
            got = kube.request("GET", kagent.CRD_PATH + name)
            conditions = (got.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            time.sleep(0.5)
    return names


@pytest.fixture
def kagent_cluster(kube_cluster: None, tmp_path: Path) -> Iterator[tuple[Scratch, Kube]]:
    """Settings for an app namespace and a kagent namespace (h4-*, made by the test, which
    also applies kagent's CRDs); all of them removed afterwards."""
    s = Scratch.__new__(Scratch)  # settings only: nothing is built or deployed here
    suffix = uuid.uuid4().hex[:6]
    s.root, s.namespace, s.release = tmp_path / "root", f"{PREFIX}app-{suffix}", f"{PREFIX}{suffix}"
    s.env = {"CLUSTER_PROVIDER": "existing", "KUBE_CONTEXT": os.environ.get("TEST_KUBE_CONTEXT", ""),
             "NAMESPACE": s.namespace, "RELEASE_NAME": s.release,
             "KAGENT_NAMESPACE": f"{PREFIX}kagent-{suffix}", "LLM_PROVIDER": "offline"}
    s.root.mkdir()
    kube = Kube(s.env["KUBE_CONTEXT"])
    try:
        yield s, kube
    finally:
        for ns in (s.namespace, s.env["KAGENT_NAMESPACE"]):
            kube.delete("v1", "Namespace", ns)
        for name in kagent.CRD_NAMES.values():
            with contextlib.suppress(KubeError):  # not applied: the test failed before
                kube.request("DELETE", kagent.CRD_PATH + name)


def inv(s: Scratch, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          env={**server_env(s), **(env or {})}, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300, check=False)


def test_install_agent_explains_what_is_missing_then_validates_against_the_clusters_crds(
        kagent_cluster: tuple[Scratch, Kube]) -> None:
    """No custom resource is written here: the test cluster's API server (Kubernetes 1.20
    built with a newer Go) crashes when it decodes a stored custom resource (a segfault in
    its JSON map encoder), so the apply itself is tested against a fake API
    (tests/unit/test_mcp_install.py) and here as a dry run against the real CRDs."""
    s, kube = kagent_cluster
    agents_ns = s.env["KAGENT_NAMESPACE"]
    for name in kagent.CRD_NAMES.values():
        assert kube.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
                            f"?fieldSelector=metadata.name={name}")["items"] == [], \
            f"{name} is already in the cluster: this test owns kagent's CRDs while it runs"

    missing = inv(s, "aiops", "install-agent")
    assert missing.returncode == 1
    assert "kagent's CRDs are not in the cluster" in missing.stderr
    assert f"kagent's namespace {agents_ns} does not exist" in missing.stderr
    assert f"the app's namespace {s.namespace} does not exist" in missing.stderr

    _apply_crds(kube)
    for ns in (s.namespace, agents_ns):
        kube.ensure_namespace(ns, {})
    url = "http://host.docker.internal:8765/mcp"
    checked = inv(s, "aiops", "install-agent", "--dry-run", "--mcp-url", url)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "validated against the cluster's kagent CRDs" in checked.stdout
    for obj in (f"RemoteMCPServer/{s.release}-workflow", f"Agent/{s.release}-agent",
                f"Role/{s.release}-agent-read"):
        assert obj in checked.stdout
    assert kube.get("rbac.authorization.k8s.io/v1", "Role", f"{s.release}-agent-read",
                    s.namespace) is None  # a dry run applies nothing
