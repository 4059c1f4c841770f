"""`inv verify` without a cluster: access-path choice, --only/--skip, the Pod Security
checker, and the journey/isolation checks against the REAL backend and frontend
started locally (SQLite, offline agent), plus a deliberately leaky frontend."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from tests.conftest import require
from todo_deploy import access as acc
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.stages.verify import stage as verify_stage
from todo_deploy.stages.verify.checks import (
    CHECK_NAMES,
    SelectionError,
    VerifyContext,
    component_of,
    restricted_problems,
    run_checks,
    select_checks,
)
from todo_deploy.stages.verify.client import FrontendClient
from todo_deploy.stages.verify.stage import cleanup_command, user_remover
from todo_deploy.tools.commands import CommandResult

REPO = Path(__file__).resolve().parents[2]
BACKEND_DIR = REPO / "app" / "backend"
FRONTEND_DIR = REPO / "app" / "frontend"
JOURNEY = ["frontend-page", "signup", "task-journey", "chat-adds-task", "isolation-rest",
           "isolation-chat"]  # fmt: skip


def settings_for(tmp_path: Path, **env: str) -> LoadedSettings:
    return load_settings(tmp_path, {"CLUSTER_PROVIDER": "existing", **env})


# ---- access path ---------------------------------------------------------------------


def service(kind: str, node_port: int | None = None, ingress: list | None = None) -> dict:
    port: dict[str, Any] = {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    if node_port:
        port["nodePort"] = node_port
    return {
        "metadata": {"name": "todo-chatbot-frontend"},
        "spec": {"type": kind, "ports": [port], "selector": {"app": "x"}},
        "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
    }


NODES = [
    {
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [
                {"type": "Hostname", "address": "node1"},
                {"type": "InternalIP", "address": "192.168.49.2"},
            ],
        }
    }
]


class FakeRunner:
    def __init__(self, stdout: str = "", returncode: int = 0) -> None:
        self.stdout, self.returncode = stdout, returncode
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], **_: Any) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(tuple(argv), self.returncode, self.stdout, "boom" if self.returncode else "")


def test_nodeport_uses_the_node_internal_ip(tmp_path: Path) -> None:
    s = settings_for(tmp_path).settings
    plan = acc.choose_access(s, service("NodePort", 31080), NODES, reachable=lambda _: True)
    assert (plan.kind, plan.url) == (acc.NODEPORT, "http://192.168.49.2:31080")


def test_unreachable_nodeport_falls_back_to_port_forward(tmp_path: Path) -> None:
    s = settings_for(tmp_path).settings
    plan = acc.choose_access(s, service("NodePort", 31080), NODES, reachable=lambda _: False)
    assert plan.kind == acc.PORT_FORWARD and plan.url == ""
    assert "http://192.168.49.2:31080 did not answer" in plan.detail


def test_loadbalancer_with_ingress_and_pending(tmp_path: Path) -> None:
    s = settings_for(tmp_path).settings
    ready = acc.choose_access(
        s, service("LoadBalancer", 31000, [{"ip": "10.0.0.7"}]), NODES, reachable=lambda _: True
    )
    assert (ready.kind, ready.url) == (acc.LOADBALANCER, "http://10.0.0.7:80")
    pending = acc.choose_access(s, service("LoadBalancer", 31000), NODES, reachable=lambda _: True)
    assert pending.kind == acc.PORT_FORWARD and "pending" in pending.detail


def test_clusterip_missing_service_and_forced_mode_port_forward(tmp_path: Path) -> None:
    s = settings_for(tmp_path).settings
    assert acc.choose_access(s, service("ClusterIP"), NODES).kind == acc.PORT_FORWARD
    missing = acc.choose_access(s, None, NODES)
    assert missing.kind == acc.PORT_FORWARD and "not found" in missing.detail
    forced = acc.choose_access(
        s, service("NodePort", 31080), NODES, reachable=lambda _: True, mode="port-forward"
    )
    assert forced.kind == acc.PORT_FORWARD


def test_minikube_uses_minikube_service_url(tmp_path: Path) -> None:
    s = settings_for(tmp_path, CLUSTER_PROVIDER="minikube", NAMESPACE="demo").settings
    runner = FakeRunner("http://192.168.49.2:30123\n")
    plan = acc.choose_access(
        s, service("NodePort", 30123), NODES, runner=runner, reachable=lambda _: True
    )
    assert plan.kind == acc.MINIKUBE and plan.url == "http://192.168.49.2:30123"
    assert runner.calls == [[
        "minikube", "service", "todo-chatbot-frontend", "-n", "demo", "--url",
        "-p", "todo-chatbot",
    ]]  # fmt: skip


def test_minikube_without_url_falls_back(tmp_path: Path) -> None:
    s = settings_for(tmp_path, CLUSTER_PROVIDER="minikube").settings
    runner = FakeRunner("", returncode=1)
    plan = acc.choose_access(s, service("ClusterIP"), NODES, runner=runner)
    assert plan.kind == acc.PORT_FORWARD
    assert "minikube service --url` gave no URL" in plan.detail


# ---- --only / --skip -------------------------------------------------------------------


def test_select_all_in_run_order() -> None:
    names = select_checks()
    assert names == list(CHECK_NAMES)
    # snapshots before the disruptive checks, cleanup last
    assert names.index("no-restarts") < names.index("self-healing") < names.index("persistence")
    assert names[-1] == "cleanup"


def test_only_and_skip() -> None:
    assert select_checks(only="isolation-rest, signup") == ["signup", "isolation-rest", "cleanup"]
    assert select_checks(only="signup", skip="cleanup") == ["signup"]
    skipped = select_checks(skip="self-healing,persistence")
    assert "self-healing" not in skipped and "persistence" not in skipped
    assert "pod-security" in skipped


def test_unknown_check_name_is_refused() -> None:
    with pytest.raises(SelectionError, match="unknown check.*self-heal"):
        select_checks(only="self-heal")


def test_cli_refuses_unknown_names_and_writes_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from invoke import Context
    from invoke.exceptions import Exit

    import todo_deploy.cli.verify as cli
    from todo_deploy.stages.verify import stage

    loaded = settings_for(tmp_path)
    monkeypatch.setattr(cli, "load_or_exit", lambda: loaded)
    with pytest.raises(Exit) as refused:  # no deploy gate yet
        cli.verify(Context())
    assert refused.value.code == 1 and "needs a passed deploy/helm gate" in str(refused.value)
    with pytest.raises(Exit) as unknown:
        cli.verify(Context(), only="nope", force=True)
    assert unknown.value.code == 2

    outcome = GateResult("verify", [Check.of("signup", False, "HTTP 500", "fix it")])
    monkeypatch.setattr(stage, "run", lambda *a, **k: outcome)
    with pytest.raises(Exit) as failed:
        cli.verify(Context(), force=True)
    assert failed.value.code == 1
    assert (tmp_path / ".state" / "verify.json").exists()


# ---- Pod Security and pod classification -----------------------------------------------


def compliant_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "todo-chatbot-backend-1"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "containers": [
                {
                    "name": "backend",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsUser": 10001,
                        "readOnlyRootFilesystem": True,
                    },
                }
            ],
        },
    }


def test_restricted_accepts_a_compliant_pod() -> None:
    assert restricted_problems(compliant_pod()) == []


def test_restricted_names_each_violation() -> None:
    pod = compliant_pod()
    pod["spec"]["hostNetwork"] = True
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["spec"]["securityContext"] = {}
    c = pod["spec"]["containers"][0]
    c["securityContext"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "runAsUser": 0}
    found = " | ".join(restricted_problems(pod))
    for expected in ("hostNetwork", "hostPath", "privileged", "allowPrivilegeEscalation",
                     "drop must include ALL", "add[0] may only be", "runAsNonRoot",
                     "runAsUser must not be 0", "seccompProfile"):  # fmt: skip
        assert expected in found, expected


def test_component_of(tmp_path: Path) -> None:
    s = settings_for(tmp_path, RELEASE_NAME="rel").settings
    rs = [{"kind": "ReplicaSet"}]
    assert component_of(s, {"metadata": {"name": "rel-backend-5d-x", "ownerReferences": rs}}) == "backend"
    labelled = {"name": "x", "ownerReferences": [{"kind": "StatefulSet"}],
                "labels": {"app.kubernetes.io/component": "database"}}  # fmt: skip
    assert component_of(s, {"metadata": labelled}) == "postgres"
    job = {"name": "rel-backend-migrate", "ownerReferences": [{"kind": "Job"}]}
    assert component_of(s, {"metadata": job}) is None


# ---- the journey against the real apps -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready: {log.read_text()[-2000:]}")


def _apps_available() -> bool:
    import importlib.util

    return (BACKEND_DIR / "todo_api").is_dir() and all(
        importlib.util.find_spec(m) for m in ("sqlalchemy", "alembic", "fastapi", "itsdangerous")
    )


@pytest.fixture(scope="module")
def real_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`python -m todo_api` + `python -m todo_web` on free ports, SQLite, offline agent."""
    require(_apps_available(), "the app packages todo_api/todo_web and their dependencies")
    tmp = tmp_path_factory.mktemp("apps")
    db = tmp / "todo.db"
    bport, fport = free_port(), free_port()
    path = os.pathsep.join([str(BACKEND_DIR), str(FRONTEND_DIR), str(BACKEND_DIR.parent / "common"),
                            os.environ.get("PYTHONPATH", "")])
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "AUTH_SECRET": secrets.token_urlsafe(32),
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "DATABASE_URL": f"sqlite:///{db}",
        "LLM_PROVIDER": "offline",
        "OPENAI_API_KEY": "",
        "BACKEND_URL": f"http://127.0.0.1:{bport}",
        "HOST": "127.0.0.1",
        "DRAIN_SECONDS": "0",
    }
    migrate = subprocess.run([sys.executable, "-m", "todo_api", "migrate"], env=env, cwd=tmp,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    procs = []
    try:
        for module, port, probe in (("todo_api", bport, "/ready"), ("todo_web", fport, "/readyz")):
            log = tmp / f"{module}.log"
            proc = subprocess.Popen([sys.executable, "-m", module], env={**env, "PORT": str(port)},
                                    cwd=tmp, stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
            procs.append(proc)
            _wait(f"http://127.0.0.1:{port}{probe}", proc, log)
        yield {"url": f"http://127.0.0.1:{fport}", "db": db, "env": env, "tmp": tmp}
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _users(db: Path, prefix: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT username FROM users WHERE username LIKE ?", (prefix + "%",))
        return [r[0] for r in rows]


def _sqlite_remover(apps: dict[str, Any]) -> Any:
    """Runs the SAME command verify execs in a backend pod, here as a local process."""

    def remove(names: list[str]) -> str:
        done = subprocess.run(
            cleanup_command(sys.executable, [*names, "no-such-user"]),
            env=apps["env"], cwd=apps["tmp"], capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return f"removed {done.stdout.strip()} user(s)"

    return remove


def test_journey_passes_against_the_real_apps(tmp_path: Path, real_apps: dict[str, Any]) -> None:
    s = settings_for(tmp_path).settings
    ctx = VerifyContext(s, real_apps["url"], log=lambda _: None, remove_users=_sqlite_remover(real_apps))
    with FrontendClient(real_apps["url"]) as bystander:  # a real user the cleanup must keep
        assert bystander.signup(f"keep-{ctx.suffix}", "keep-password-123").status_code == 303
    try:
        checks = run_checks(ctx, select_checks(only=",".join(JOURNEY + ["pod-security"])))
    finally:
        ctx.close()
    verdicts = {c.name: c.verdict for c in checks}
    failed = [f"{c.name}: {c.evidence}" for c in checks if c.verdict is Verdict.FAIL]
    assert not failed, failed
    assert all(verdicts[name] is Verdict.PASS for name in JOURNEY)
    assert verdicts["pod-security"] is Verdict.SKIP  # no cluster here
    assert verdicts["cleanup"] is Verdict.PASS
    cleanup = next(c for c in checks if c.name == "cleanup")
    assert "removed 2 user(s)" in cleanup.evidence
    # the verify users and their rows are gone; the bystander is untouched
    assert _users(real_apps["db"], "verify-") == []
    assert _users(real_apps["db"], "keep-") == [f"keep-{ctx.suffix}"]
    with sqlite3.connect(real_apps["db"]) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM tasks WHERE user_id NOT IN (SELECT id FROM users)"
        ).fetchone()[0]
    assert orphans == 0


def test_isolation_checks_alone_create_their_own_users(tmp_path: Path, real_apps: dict) -> None:
    ctx = VerifyContext(settings_for(tmp_path).settings, real_apps["url"], log=lambda _: None)
    try:
        checks = run_checks(ctx, ["isolation-rest", "cleanup"])
    finally:
        ctx.close()
    assert checks[0].verdict is Verdict.PASS, checks[0].evidence
    assert "GET 404, PUT 404, PATCH 404, DELETE 404" in checks[0].evidence
    assert checks[1].verdict is Verdict.WARN  # no database access: users remain, said so
    assert "remain" in checks[1].evidence


# ---- a deliberately leaky frontend must fail isolation ---------------------------------


def leaky_frontend() -> Any:
    """Speaks the frontend's protocol but keeps ONE task list for everybody."""
    app = FastAPI()
    tasks: dict[int, dict[str, Any]] = {}
    users: dict[str, str] = {}

    def who(request: Request) -> str | None:
        return request.cookies.get("who")

    @app.get("/api/session")
    def session(request: Request) -> dict[str, Any]:
        name = who(request)
        return {"authenticated": bool(name), "username": name, "csrf_token": "t" * 20}

    @app.post("/signup")
    async def signup(request: Request) -> Any:
        form = await request.form()
        name = str(form["username"])
        if name in users:
            return JSONResponse({"detail": "taken"}, 409)
        users[name] = str(form["password"])
        response = RedirectResponse("/", 303)
        response.set_cookie("who", name)
        return response

    @app.post("/login")
    async def login(request: Request) -> Any:
        form = await request.form()
        if users.get(str(form["username"])) != form["password"]:
            return JSONResponse({"detail": "wrong"}, 401)
        response = RedirectResponse("/", 303)
        response.set_cookie("who", str(form["username"]))
        return response

    @app.post("/logout")
    def logout() -> Any:
        response = RedirectResponse("/", 303)
        response.delete_cookie("who")
        return response

    @app.get("/api/tasks")
    def list_tasks() -> dict[str, Any]:
        items = list(tasks.values())
        return {"items": items, "total": len(items), "limit": 200, "offset": 0}

    @app.post("/api/tasks", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        task = {"id": len(tasks) + 1, "user_id": 1, "title": body["title"],
                "description": body.get("description") or "", "completed": False,
                "created_at": "now", "updated_at": "now"}  # fmt: skip
        tasks[task["id"]] = task
        return task

    @app.get("/api/tasks/{tid}")
    def get(tid: int) -> Any:
        return tasks.get(tid) or JSONResponse({"detail": "not found"}, 404)

    @app.put("/api/tasks/{tid}")
    async def put(tid: int, request: Request) -> Any:
        tasks[tid].update(await request.json())
        return tasks[tid]

    @app.patch("/api/tasks/{tid}/complete")
    def complete(tid: int) -> Any:
        tasks[tid]["completed"] = True
        return tasks[tid]

    @app.delete("/api/tasks/{tid}", status_code=204)
    def delete(tid: int) -> None:
        tasks.pop(tid, None)

    return app


@pytest.fixture
def leaky_url() -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(leaky_frontend(), host="127.0.0.1", port=port,
                                           log_level="error"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_leaky_frontend_fails_isolation(tmp_path: Path, leaky_url: str) -> None:
    ctx = VerifyContext(settings_for(tmp_path).settings, leaky_url, log=lambda _: None)
    try:
        checks = run_checks(ctx, ["signup", "isolation-rest"])
    finally:
        ctx.close()
    by_name = {c.name: c for c in checks}
    assert by_name["signup"].verdict is Verdict.PASS, by_name["signup"].evidence
    isolation = by_name["isolation-rest"]
    assert isolation.verdict is Verdict.FAIL
    assert "B lists 1 of A's 1 task(s)" in isolation.evidence
    assert "GET 200" in isolation.evidence and "CHANGED or gone" in isolation.evidence
    assert isolation.fix


# ---- image identity ---------------------------------------------------------------------


class _PodLister:
    def __init__(self, pods: list[dict]) -> None:
        self.pods = pods

    def list(self, *args: Any, **kwargs: Any) -> list[dict]:
        return self.pods


def _app_pod(name: str, component: str, image: str, image_id: str) -> dict:
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/component": component},
                         "ownerReferences": [{"kind": "ReplicaSet"}]},
            "spec": {"containers": [{"name": component, "image": image}]},
            "status": {"containerStatuses": [{"name": component, "imageID": image_id}]}}


def test_image_identity_passes_over_unstarted_containers_and_fails_a_wrong_image(tmp_path):
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.kube import runs_image
    from todo_deploy.stages.verify.checks import VerifyContext, check_image_identity

    built = {c: ImageRef(c, f"todo-{c}", "abc", image_id=f"sha256:{d * 64}")
             for c, d in (("backend", "1"), ("frontend", "2"))}
    running = [_app_pod("b-1", "backend", built["backend"].ref, "docker://sha256:" + "1" * 64),
               _app_pod("f-1", "frontend", built["frontend"].ref, "docker://sha256:" + "2" * 64)]
    surplus = _app_pod("b-2", "backend", built["backend"].ref, "")  # scaled away before it started
    stale = _app_pod("b-3", "backend", built["backend"].ref, "docker://sha256:" + "9" * 64)
    assert runs_image(surplus["status"]["containerStatuses"][0], built["backend"].image_id) is None
    assert runs_image(stale["status"]["containerStatuses"][0], built["backend"].image_id) is False

    def verdict(pods: list[dict]) -> Check:
        ctx = VerifyContext(settings_for(tmp_path).settings, "http://127.0.0.1:9",
                            log=lambda _: None, images=built)
        ctx.kube = _PodLister(pods)  # type: ignore[assignment]
        [check] = check_image_identity(ctx)
        return check

    ok = verdict([*running, surplus])
    assert ok.verdict is Verdict.PASS, ok.evidence
    assert "not started yet, not counted: b-2/backend" in ok.evidence
    wrong = verdict([*running, stale])
    assert wrong.verdict is Verdict.FAIL and "b-3/backend imageID docker://sha256:999" in wrong.evidence


def test_user_remover_execs_the_backends_delete_users_command_with_no_sql(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_for(tmp_path).settings
    pod = {"metadata": {"name": f"{s.release_name}-backend-abc", "ownerReferences": [{"kind": "ReplicaSet"}],
                        "labels": {"app.kubernetes.io/component": "backend"}},
           "spec": {"containers": [{"name": "backend"}]},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    class FakeKube:
        context = "test"
        api = None

        def __init__(self, context: str | None = None) -> None:
            pass

        def list(self, *args: Any) -> list[dict]:
            return [pod]

    execs: list[list[str]] = []

    def fake_exec(api: Any, namespace: str, name: str, container: str, argv: list[str]) -> tuple[int, str, str]:
        execs.append(argv)
        return 0, "2\n", ""

    monkeypatch.setattr(verify_stage, "exec_in_pod", fake_exec)
    monkeypatch.setattr(verify_stage, "Kube", FakeKube)
    said = user_remover(s, FakeKube())(["verify-a-0a1b2c", "verify-b-3d4e5f", "someone-else"])
    assert execs == [["python", "-m", "todo_api", "delete-users", "verify-a-0a1b2c", "verify-b-3d4e5f"]]
    assert not any(word in " ".join(execs[0]).upper() for word in ("DELETE FROM", "SELECT", "-C"))
    assert said.startswith("removed 2 user(s) verify-a-0a1b2c, verify-b-3d4e5f")
