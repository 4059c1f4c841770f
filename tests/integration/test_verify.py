"""`inv verify`, `inv open`, `inv logs` and `inv docs` against the cluster tier's shared
release (tests/shared_release.py: 2 backend replicas, NodePort frontend, bundled PostgreSQL):
verify through the NodePort, verify through its own port-forward, then the docs report from
the live objects.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import poll_until
from tests.shared_release import FullRun, SharedRelease
from todo_deploy.config import LoadedSettings
from todo_deploy.gates import GateResult, Verdict
from todo_deploy.kube import Kube

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]

ALL_PASS_EXCEPT = {"cleanup"}  # cleanup may only warn; everything else must pass


@pytest.fixture
def deployed(shared_release: SharedRelease) -> LoadedSettings:
    """The cluster tier's shared release (tests/shared_release.py): 2 backend and 2 frontend
    replicas behind a NodePort, bundled PostgreSQL, its deploy gate recorded."""
    return shared_release.stack.loaded()


def assert_all_pass(result: GateResult) -> dict[str, str]:
    verdicts = {c.name: c.verdict.value for c in result.checks}
    bad = [
        f"{c.name}: {c.verdict.value}: {c.evidence}"
        for c in result.checks
        if c.verdict is not Verdict.PASS and c.name not in ALL_PASS_EXCEPT
    ]
    assert not bad, bad
    assert result.passed
    return verdicts


def verify_users_left(loaded: LoadedSettings) -> str:
    """Counts verify-* users in the database (exec into a backend pod, like the cleanup)."""
    from todo_deploy.kube import exec_in_pod
    from todo_deploy.stages.verify.checks import component_of, pod_ready

    kube = Kube(loaded.settings.context_name)
    ns = loaded.settings.namespace
    pod = next(
        p for p in kube.list("v1", "Pod", ns)
        if component_of(loaded.settings, p) == "backend" and pod_ready(p)
    )  # fmt: skip
    script = (
        "from sqlalchemy import text\n"
        "from todo_api.db import make_engine\n"
        "from todo_api.settings import load_settings\n"
        "with make_engine(load_settings().database_url).connect() as db:\n"
        "    print(db.execute(text(\"SELECT count(*) FROM users WHERE username LIKE 'verify-%'\"))"
        ".scalar())\n"
    )
    code, out, err = exec_in_pod(kube.api, ns, pod["metadata"]["name"], pod["spec"]["containers"][0]["name"],
                                 ["python", "-c", script])  # fmt: skip
    assert code == 0, err
    return out.strip()


def test_verify_through_the_nodeport(deployed: LoadedSettings, full_inv_up: FullRun) -> None:
    """The verify that `inv up --full` ran and recorded (tests/shared_release.py full_inv_up):
    every check, the disruptive ones included, through the NodePort."""
    result = full_inv_up.verify
    assert full_inv_up.returncode == 0, full_inv_up.printed.decode(errors="replace")[-3000:]
    assert result is not None and result.stage == "verify"
    verdicts = assert_all_pass(result)
    assert result.details["access"]["kind"] == "nodeport"
    for name in ("frontend-page", "signup", "task-journey", "chat-adds-task", "isolation-rest",
                 "isolation-chat", "backend-readiness", "no-restarts", "image-identity",
                 "pod-security", "self-healing", "persistence", "cleanup"):  # fmt: skip
        assert name in verdicts, name
    # The bundled database keeps its data across a restart of every pod, its own included (this
    # was also test_database_modes' bundled case, which deployed a release of its own for it).
    persistence = next(c for c in result.checks if c.name == "persistence")
    assert "postgres" in persistence.evidence and "all still there" in persistence.evidence, persistence
    assert Kube(deployed.settings.context_name).get(
        "apps/v1", "StatefulSet", f"{deployed.settings.release_name}-postgres", deployed.settings.namespace)
    heal = next(c for c in result.checks if c.name == "self-healing")
    assert ", 0 failed" in heal.evidence and "replicas back: yes" in heal.evidence
    assert verdicts["cleanup"] == "pass"
    assert verify_users_left(deployed) == "0"
    assert result.details["duration_s"] < 150
    assert json.loads((deployed.state_dir / "verify.json").read_text())["passed"] is True


def test_verify_through_its_own_port_forward(deployed: LoadedSettings) -> None:
    from todo_deploy.stages.verify import stage

    # the journey plus the checks that replace pods behind the forward
    result = stage.run(deployed, access="port-forward", skip="self-healing", log=lambda _: None)
    assert_all_pass(result)
    access = result.details["access"]
    assert access["kind"] == "port-forward" and access["url"].startswith("http://127.0.0.1:")
    assert access["port_forward_connections"] > 0
    persistence = next(c for c in result.checks if c.name == "persistence")
    assert "all still there" in persistence.evidence
    # the local forwarding server is closed afterwards
    import httpx

    with pytest.raises(httpx.TransportError):
        httpx.get(access["url"], timeout=2)


def test_docs_report_from_the_live_objects(deployed: LoadedSettings, tmp_path: Path) -> None:
    from todo_deploy.stages.docs import stage
    from todo_deploy.stages.docs.diagram import dot_available

    out = tmp_path / "docs"
    result = stage.run(deployed, out_dir=out, log=lambda _: None)
    verdicts = {c.name: c.verdict for c in result.checks}
    assert verdicts["live objects read"] is Verdict.PASS
    assert verdicts["report written"] is Verdict.PASS
    assert verdicts["no secret values"] is Verdict.PASS
    assert verdicts["diagram written"] is (Verdict.PASS if dot_available() else Verdict.WARN)
    release = deployed.settings.release_name
    md = (out / "deployment-report.md").read_text()
    for name in (f"{release}-backend", f"{release}-frontend", f"{release}-postgres",
                 f"data-{release}-postgres-0"):  # fmt: skip
        assert name in md, name
    assert f"| Deployment | {release}-backend | backend | 2/2 | 2 | ready |" in md
    assert "### deploy: passed" in md and "### verify: passed" in md
    assert "```mermaid" in md
    data = json.loads((out / "deployment-report.json").read_text())
    assert all(row["uid"] for row in data["objects"])
    assert data["access"]["kind"] == "nodeport"
    if dot_available():
        assert "<svg" in (out / "architecture.svg").read_text()
    for secret in deployed.settings.secret_values():
        assert secret not in md and secret not in json.dumps(data)


def test_the_app_url_is_the_nodeport_and_answers(deployed: LoadedSettings) -> None:
    from todo_deploy.access import app_url

    app = app_url.ensure(deployed)
    assert app.kind == "nodeport", app
    assert app_url.answers(app.url)
    assert app_url.load(deployed.state_dir) == app


def wait_until(done: Callable[[], bool], deadline_s: float, interval_s: float = 0.2) -> None:
    """Poll `done()` until it holds or the deadline passes (the caller asserts what it needs)."""
    poll_until(done, bool, deadline_s, interval_s)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _inv(loaded: LoadedSettings, *args: str) -> subprocess.CompletedProcess[str]:
    settings = loaded.settings
    env = {
        **os.environ, "TODO_DEPLOY_ROOT": str(loaded.root), "COLUMNS": "250", "NO_COLOR": "1",
        "CLUSTER_PROVIDER": "existing", "KUBE_CONTEXT": settings.kube_context,
        "NAMESPACE": settings.namespace, "RELEASE_NAME": settings.release_name,
    }
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_inv_open_keeps_a_port_forward_across_pod_restarts_until_stopped(
    deployed: LoadedSettings,
) -> None:
    from todo_deploy.access import app_url
    from todo_deploy.stages.verify.checks import component_of, pod_ready

    opened = _inv(deployed, "open", "--forward")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    match = re.search(r"The app: (http://127\.0\.0\.1:\d+)  \(port-forward(?: asked for)?, pid (\d+)", opened.stdout)
    assert match, opened.stdout
    url, pid = match.group(1), int(match.group(2))
    assert app_url.answers(url)

    settings = deployed.settings
    kube = Kube(settings.context_name)
    frontends = [p for p in kube.list("v1", "Pod", settings.namespace)
                 if component_of(settings, p) == "frontend"]
    old = {p["metadata"]["name"] for p in frontends}
    for pod in frontends:
        kube.delete("v1", "Pod", pod["metadata"]["name"], settings.namespace)
    deadline, answered_after = time.monotonic() + 180, False
    while time.monotonic() < deadline:
        pods = [p for p in kube.list("v1", "Pod", settings.namespace)
                if component_of(settings, p) == "frontend" and pod_ready(p)
                and p["metadata"]["name"] not in old]
        if pods and app_url.answers(url):
            answered_after = True
            break
        time.sleep(1)
    assert answered_after, "the port-forward did not reach the replacement pods"
    os.kill(pid, 0)  # the same forwarding process, still running

    stopped = _inv(deployed, "open", "--stop")
    assert stopped.returncode == 0 and f"stopped the port-forward on {url}" in stopped.stdout
    wait_until(lambda: not process_exists(pid), deadline_s=10, interval_s=0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not app_url.answers(url, timeout=2)
    assert app_url.load(deployed.state_dir) is None


def test_inv_logs_merges_the_pods_and_follows_new_lines(deployed: LoadedSettings) -> None:
    from todo_deploy.access import frontend_service_name

    snapshot = _inv(deployed, "logs", "backend", "--tail", "5", "--probes")  # probes: always there
    assert snapshot.returncode == 0, snapshot.stderr
    assert re.search(r"^\d\d:\d\d:\d\d \S+-backend-\S+ GET /ready -> 200", snapshot.stdout, re.MULTILINE)
    assert '{"ts"' not in snapshot.stdout and "-frontend-" not in snapshot.stdout

    settings = deployed.settings
    env = {**os.environ, "TODO_DEPLOY_ROOT": str(deployed.root), "COLUMNS": "250",
           "NO_COLOR": "1", "NAMESPACE": settings.namespace, "RELEASE_NAME": settings.release_name,
           "CLUSTER_PROVIDER": "existing", "KUBE_CONTEXT": settings.kube_context}
    kube = Kube(settings.context_name)
    svc = kube.get("v1", "Service", frontend_service_name(settings), settings.namespace)
    base = f"http://{svc['spec']['clusterIP']}"
    import urllib.error
    import urllib.request

    # A line of the app's own (probe lines are left out) for the snapshot to show at once.
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"{base}/inv-logs-before", timeout=10)
    follower = subprocess.Popen(
        [sys.executable, "-m", "invoke", "logs", "frontend", "--follow", "--tail", "1"],
        cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(follower.stdout or ()), daemon=True)
    reader.start()
    try:
        # The snapshot printed: from now on a new line can only come through the follow.
        wait_until(lambda: bool(said), deadline_s=30)
        urllib.request.urlopen(f"{base}/login?probe=inv-logs-follow", timeout=10).read()
        wait_until(lambda: any("GET /login -> 200" in line for line in said), deadline_s=30)
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=20)
        reader.join(timeout=5)
    output = "".join(said)
    assert "GET /login -> 200" in output, output[-2000:]
    assert "Traceback" not in output
