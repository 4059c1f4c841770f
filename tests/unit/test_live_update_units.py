"""Live update, the workflow side (issue 24): which saves are synced and which fall back to a
rebuild, the devsync argv, its result, the sync through a faked exec, the served-code wait,
`inv watch --dev`'s dispatch, and what `inv status` and verify say about dev pods."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from invoke.exceptions import Exit

from todo_deploy.access import serving
from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import GateResult, Verdict
from todo_deploy.pipeline import conductor, status
from todo_deploy.release import live_update
from todo_deploy.release.live_update import DEV_CODE, DEV_LABEL, Fallback
from todo_deploy.stages.verify.checks import DEV_PODS_FIX, VerifyContext, check_image_identity
from todo_deploy.watch import Watcher

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"backend": ImageRef("backend", "todo-backend", "abc123", "sha256:" + "1" * 64),
          "frontend": ImageRef("frontend", "todo-frontend", "def456", "sha256:" + "2" * 64)}


def settings_in(root: Path) -> LoadedSettings:
    return load_settings(root, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "lu-unit",
                                "RELEASE_NAME": "todo-lu"})


# ---- classification ------------------------------------------------------------------------------


@pytest.mark.parametrize(("relative", "reason"), [
    ("app/backend/todo_api/routes/tasks.py", ""),
    ("app/frontend/todo_web/templates/app.html", ""),
    ("app/frontend/todo_web/static/app.css", ""),
    ("app/common/todo_serving/server.py", ""),
    ("app/backend/requirements.txt", "dependencies changed: requirements.txt"),
    ("app/frontend/requirements-dev.txt", "dependencies changed: requirements-dev.txt"),
    ("app/backend/pyproject.toml", "dependencies changed: pyproject.toml"),
    ("docker/backend.Dockerfile", "Dockerfile"),
    ("app/.dockerignore", "Dockerfile"),
    ("app/backend/todo_api/migrations/versions/0007_x.py", "migrations"),
    ("helm/todo-chatbot/templates/backend.yaml", "chart"),
    ("helm/todo-chatbot/values.yaml", "chart"),
    (".env", "settings"),
    (".env.staging", "settings"),
    ("app/backend/README.md", "not in the apps' packages"),
])
def test_each_saved_path_is_synced_or_falls_back_with_its_reason(relative: str, reason: str) -> None:
    assert live_update.fallback_reason(relative) == reason


def test_a_save_is_synced_per_component_and_todo_serving_goes_to_both(tmp_path: Path) -> None:
    for relative in ("app/backend/todo_api/routes/tasks.py", "app/common/todo_serving/x.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x = 1\n")
    plan = live_update.classify([tmp_path / "app/backend/todo_api/routes/tasks.py",
                                 tmp_path / "app/common/todo_serving/x.py",
                                 tmp_path / "app/backend/todo_api/__pycache__/tasks.cpython-311.pyc",
                                 tmp_path / "app/backend/todo_api/routes/sedAb12Cd"],  # sed -i's, gone
                                tmp_path, tmp_path / "helm/todo-chatbot")
    assert plan.syncable and plan.fallbacks == []
    assert sorted(plan.files["backend"]) == ["todo_api/routes/tasks.py", "todo_serving/x.py"]
    assert sorted(plan.files["frontend"]) == ["todo_serving/x.py"]


def test_one_unsyncable_path_makes_the_whole_save_a_rebuild_and_says_why(tmp_path: Path) -> None:
    plan = live_update.classify([tmp_path / "app/backend/todo_api/routes/tasks.py",
                                 tmp_path / "app/backend/requirements.txt"], tmp_path)
    assert not plan.syncable
    assert plan.fallbacks == [Fallback("app/backend/requirements.txt",
                                       "dependencies changed: requirements.txt")]
    assert plan.reasons() == "app/backend/requirements.txt (dependencies changed: requirements.txt)"


# ---- the devsync argv --------------------------------------------------------------------------------


def test_the_argv_carries_each_file_compressed_and_a_deletion_as_an_empty_blob() -> None:
    argv = live_update.sync_argv("g1", {"todo_api/a.py": b"print('hi')\n", "todo_api/gone.py": None})
    assert argv[:4] == ["python", "-m", "todo_serving.devsync", "g1"]
    name, blob = argv[4].split("=", 1)
    assert name == "todo_api/a.py"
    assert zlib.decompress(base64.b64decode(blob)) == b"print('hi')\n"
    assert argv[5] == "todo_api/gone.py="


def test_a_file_whose_entry_would_pass_120_kb_is_refused() -> None:
    random = os.urandom(100_000)  # incompressible: ~133 KB in base64
    with pytest.raises(live_update.TooLarge, match=r"todo_web/static/big\.js is too large to sync .*120 KB"):
        live_update.sync_argv("g", {"todo_web/static/big.js": random})
    assert len(live_update.entry("todo_web/static/ok.js", b"a" * 500_000)) < 120_000  # compresses


def test_the_generation_names_the_content() -> None:
    one = live_update.generation([("backend/a.py", b"1")])
    assert one == live_update.generation([("backend/a.py", b"1")]) and len(one) == 12
    assert one != live_update.generation([("backend/a.py", b"2")])
    assert one != live_update.generation([("backend/a.py", None)])


# ---- devsync's result -----------------------------------------------------------------------------------


def test_the_result_is_the_json_line_on_stdout() -> None:
    ok = live_update.parse_result("backend", "b-1", 0, 'noise\n{"generation": "g", "ok": true, "seconds": 0.8}\n', "")
    assert ok == live_update.PodResult("backend", "b-1", True, 0.8, "")
    bad = live_update.parse_result("backend", "b-1", 1, json.dumps(
        {"generation": "g", "ok": False, "seconds": 1.2,
         "error": "ImportError: cannot import name 'nope' from 'todo_api.routes'"}), "")
    assert not bad.ok and bad.error == "ImportError: cannot import name 'nope' from 'todo_api.routes'"


def test_no_json_line_is_not_ok_and_keeps_stderrs_last_lines() -> None:
    result = live_update.parse_result("frontend", "f-1", 1, "", "Traceback\n  ...\nNo module named todo_serving.devsync\n")
    assert not result.ok
    assert result.error == ("devsync gave no result (exit code 1): Traceback | ... | "
                            "No module named todo_serving.devsync")


# ---- one sync through a faked exec -------------------------------------------------------------------


def app_pod(name: str, component: str, *, dev: bool = True, ready: bool = True,
            code: str = "") -> dict[str, Any]:
    labels = {"app.kubernetes.io/component": component, **({DEV_LABEL: "true"} if dev else {})}
    meta: dict[str, Any] = {"name": name, "labels": labels, "ownerReferences": [{"kind": "ReplicaSet"}]}
    if code:
        meta["annotations"] = {DEV_CODE: code}
    ref = IMAGES[component].ref
    return {"metadata": meta, "spec": {"containers": [{"name": component, "image": ref}]},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}],
                       "containerStatuses": [{"name": component, "imageID": "docker://" + IMAGES[component].image_id}]}}


class FakeKube:
    context = "test"

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.patches: list[tuple[str, dict[str, Any]]] = []

    def list(self, api_version: str, kind: str, namespace: str = "", selector: str = "") -> list[dict[str, Any]]:
        component = dict(kv.split("=") for kv in selector.split(","))["app.kubernetes.io/component"]
        return [p for p in self.pods if p["metadata"]["labels"]["app.kubernetes.io/component"] == component]

    def patch(self, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any]) -> dict:
        self.patches.append((name, body))
        return {}


class FakeExec:
    """devsync's answers per pod; records the calls and that they overlapped."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, list[str]]] = []
        self.inside = 0
        self.most = 0
        self.lock = threading.Lock()
        self.both_in = threading.Barrier(len(answers), timeout=5)

    def __call__(self, pod: str, container: str, argv: list[str]) -> tuple[int | None, str, str]:
        with self.lock:
            self.calls.append((pod, container, argv))
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.both_in.wait()  # each waits for the others: they run at the same time
        with self.lock:
            self.inside -= 1
        return self.answers[pod]


def backend_plan(tmp_path: Path) -> live_update.Plan:
    source = tmp_path / "tasks.py"
    source.write_text("x = 2\n")
    return live_update.Plan(files={"backend": {"todo_api/routes/tasks.py": source}})


def ok_line(gen: str = "g") -> str:
    return json.dumps({"generation": gen, "ok": True, "seconds": 0.5}) + "\n"


def test_a_sync_runs_in_every_ready_pod_at_once_and_annotates_them(tmp_path: Path) -> None:
    settings = settings_in(tmp_path).settings
    kube = FakeKube([app_pod("b-1", "backend"), app_pod("b-2", "backend"),
                     app_pod("b-3", "backend", ready=False)])
    run = FakeExec({"b-1": (0, ok_line(), ""), "b-2": (0, ok_line(), "")})
    outcome = live_update.sync(kube, settings, backend_plan(tmp_path), run)  # type: ignore[arg-type]
    assert outcome.ok and outcome.components == ["backend"]
    assert sorted(c[0] for c in run.calls) == ["b-1", "b-2"] and run.most == 2
    assert {c[1] for c in run.calls} == {"backend"}
    assert run.calls[0][2][3] == outcome.generation
    assert sorted(kube.patches, key=lambda p: p[0]) == [
        (name, {"metadata": {"annotations": {DEV_CODE: outcome.generation}}}) for name in ("b-1", "b-2")]


def test_a_broken_sync_names_the_pods_error_and_that_the_previous_code_serves(tmp_path: Path) -> None:
    settings = settings_in(tmp_path).settings
    kube = FakeKube([app_pod("b-1", "backend")])
    error = "ImportError: cannot import name 'nope'"
    run = FakeExec({"b-1": (1, json.dumps({"generation": "g", "ok": False, "error": error}), "")})
    outcome = live_update.sync(kube, settings, backend_plan(tmp_path), run)  # type: ignore[arg-type]
    assert not outcome.ok and kube.patches == []
    assert live_update.failure_lines(outcome) == [
        f"b-1: the new code did not start: {error}",
        "the previous code keeps serving in b-1; fix the error and save again"]


def test_pods_deployed_without_dev_mode_or_a_too_large_file_refuse_the_sync(tmp_path: Path) -> None:
    settings = settings_in(tmp_path).settings
    run = FakeExec({})
    plain = live_update.sync(FakeKube([app_pod("b-1", "backend", dev=False)]), settings,  # type: ignore[arg-type]
                             backend_plan(tmp_path), run)
    assert plain.refused == "backend pod b-1 is not in dev mode (deployed without --dev)"
    big = tmp_path / "big.js"
    big.write_bytes(os.urandom(100_000))
    plan = live_update.Plan(files={"frontend": {"todo_web/static/big.js": big}})
    refused = live_update.sync(FakeKube([app_pod("f-1", "frontend")]), settings, plan, run)  # type: ignore[arg-type]
    assert refused.refused.startswith("todo_web/static/big.js is too large to sync")
    assert run.calls == [] and not plain.ok and not refused.ok


# ---- the frontend answering with the synced code --------------------------------------------------


def test_served_only_after_three_answers_in_a_row_naming_the_synced_code() -> None:
    seen = [serving.Served("image", "image"), serving.Served("g2", "image"), serving.Served("g2", None),
            None, serving.Served("g2", "image"), serving.Served("g2", "g1"), serving.Served("g2", "x")]
    asked = iter(seen)
    now = [0.0]
    assert serving.wait_until_code({"backend": "g2"}, lambda: next(asked), 10, clock=lambda: now[0],
                                   sleep=lambda s: now.__setitem__(0, now[0] + s)) is None
    assert next(asked, "done") == "done"  # the 4th..7th answers were needed (None broke the streak)
    never = serving.wait_until_code({"frontend": "g3"}, lambda: serving.Served("g3", "g2"), 1,
                                    clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert never == "the frontend's /api/meta answered with frontend code g2"


def test_the_served_code_comes_from_the_body_and_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"version": "1", "code": "g9"}, headers={"X-Code-Version": "g8"})

    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(answer), **kw))
    assert serving.fetch_code("http://frontend.test")() == serving.Served("g9", "g8")


# ---- `inv watch --dev` ---------------------------------------------------------------------------------


def watcher(tmp_path: Path, kube: FakeKube, run: FakeExec, dev: bool = True) -> tuple[Watcher, list[str]]:
    lines: list[str] = []
    loaded = settings_in(tmp_path)
    made = Watcher(loaded, lines.append, dev=dev, run_exec=run, kube=kube,
                   frontend_url=lambda: contextlib.nullcontext("http://frontend.test"))
    return made, lines


def test_watch_dev_syncs_a_source_save_and_says_when_it_serves(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube([app_pod("b-1", "backend")])
    run = FakeExec({"b-1": (0, ok_line(), "")})
    made, _ = watcher(tmp_path, kube, run)
    rebuilt: list[set[str]] = []
    monkeypatch.setattr(made, "handle", lambda components: rebuilt.append(components))
    monkeypatch.setattr(serving, "fetch_code", lambda url: lambda: serving.Served(kube.patches[0][1]["metadata"]["annotations"][DEV_CODE], None))
    monkeypatch.setattr(serving, "POLL_S", 0.001)
    monkeypatch.setattr(live_update, "contents", lambda files: {name: b"x = 3\n" for name in files})
    saved = ROOT / "app/backend/todo_api/routes/tasks.py"
    outcome = made.handle_save([saved], {"backend"})
    assert outcome.ok and rebuilt == []
    assert "todo_api/routes/tasks.py synced as" in outcome.message
    assert "(no image built, no pod replaced): serving " in outcome.message
    assert outcome.message.endswith(" s after the save")


def test_watch_dev_rebuilds_a_requirements_change_and_says_why(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    made, lines = watcher(tmp_path, FakeKube([]), FakeExec({}))
    rebuilt: list[set[str]] = []
    monkeypatch.setattr(made, "handle", lambda components: rebuilt.append(components))
    made.handle_save([ROOT / "app/backend/requirements.txt"], {"backend"})
    assert rebuilt == [{"backend"}]
    assert lines == [("watch: cannot sync app/backend/requirements.txt (dependencies changed: "
                      "requirements.txt): rebuilding and rolling instead")]


def test_watch_without_dev_never_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeExec({})
    made, _ = watcher(tmp_path, FakeKube([app_pod("b-1", "backend")]), run, dev=False)
    rebuilt: list[set[str]] = []
    monkeypatch.setattr(made, "handle", lambda components: rebuilt.append(components))
    made.handle_save([ROOT / "app/backend/todo_api/routes/tasks.py"], {"backend"})
    assert rebuilt == [{"backend"}] and run.calls == []


def test_watch_dev_reports_a_broken_sync_as_failed_with_the_old_code_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = "ImportError: No module named 'nope'"
    run = FakeExec({"b-1": (1, json.dumps({"generation": "g", "ok": False, "error": error}), "")})
    made, lines = watcher(tmp_path, FakeKube([app_pod("b-1", "backend")]), run)
    outcome = made.handle_save([ROOT / "app/backend/todo_api/routes/tasks.py"], {"backend"})
    assert not outcome.ok
    assert f"did not start in b-1: {error}; the previous code keeps serving" in outcome.message
    assert f"watch: b-1: the new code did not start: {error}" in lines


def test_the_same_error_in_every_pod_is_printed_once_with_its_traceback(tmp_path: Path) -> None:
    error = ("the new code's process exited with code 1 before it answered\nTraceback:\n"
             "  File \"/opt/app/todo_api/__init__.py\", line 4\nModuleNotFoundError: No module named 'x'")
    answer = (1, json.dumps({"generation": "g", "ok": False, "error": error}), "")
    run = FakeExec({"b-1": answer, "b-2": answer})
    made, lines = watcher(tmp_path, FakeKube([app_pod("b-1", "backend"), app_pod("b-2", "backend")]), run)
    outcome = made.handle_save([ROOT / "app/backend/todo_api/routes/tasks.py"], {"backend"})
    assert lines[-6:-1] == [
        ("watch: b-1, b-2: the new code did not start: the new code's process exited with code 1 "
         "before it answered"), "watch:     Traceback:",
        'watch:       File "/opt/app/todo_api/__init__.py", line 4',
        "watch:     ModuleNotFoundError: No module named 'x'",
        "watch: the previous code keeps serving in b-1, b-2; fix the error and save again"]
    assert ("did not start in b-1, b-2: the new code's process exited with code 1 before it answered "
            "(ModuleNotFoundError: No module named 'x'); the previous code keeps serving") in outcome.message


# ---- `inv up --dev` -----------------------------------------------------------------------------------


def test_up_dev_stops_after_the_deploy_and_refuses_later_stages_and_helm() -> None:
    assert conductor.dev_until(conductor.UpOptions(dev=True)) == "deploy"
    assert conductor.dev_until(conductor.UpOptions(dev=True, until="build")) == "build"
    assert conductor.dev_until(conductor.UpOptions(until="verify")) == "verify"
    with pytest.raises(Exit, match="--until verify cannot run with it"):
        conductor.dev_until(conductor.UpOptions(dev=True, until="verify"))
    with pytest.raises(Exit, match="drop --helm"):
        conductor.dev_until(conductor.UpOptions(dev=True, helm=True))


# ---- the chart values ----------------------------------------------------------------------------------


def test_dev_is_in_the_values_only_when_on_so_normal_renders_are_unchanged(tmp_path: Path) -> None:
    settings = settings_in(tmp_path).settings
    normal = chart_values.raw_values(settings, IMAGES)
    assert "dev" not in normal and "dev" not in chart_values.helm_values(settings, IMAGES)
    assert chart_values.raw_values(settings, IMAGES, dev=False) == normal  # the same cache key
    dev = chart_values.raw_values(settings, IMAGES, dev=True)
    assert dev["dev"] == {"enabled": True} and chart_values.helm_values(settings, IMAGES, dev=True)["dev"] == {"enabled": True}
    assert {k: v for k, v in dev.items() if k != "dev"} == normal
    assert manifests.render_manifests(settings, IMAGES, dev=False) == manifests.render_manifests(settings, IMAGES)


# ---- `inv status` and verify on dev pods ---------------------------------------------------------------


def test_a_dev_pods_note_says_what_it_serves() -> None:
    assert live_update.dev_note(app_pod("b-1", "backend", code="3f2a1b9c0d4e")) == (
        "dev: synced from working tree 3f2a1b9c0d4e, not image abc123")
    assert live_update.dev_note(app_pod("b-1", "backend")) == "dev mode: image abc123's code, not synced yet"
    assert live_update.dev_note(app_pod("b-1", "backend", dev=False)) == ""


def test_status_names_dev_pods_on_the_deploy_rows_only() -> None:
    pods = [app_pod("b-1", "backend", code="3f2a1b9c0d4e"), app_pod("f-1", "frontend")]
    deployments = [{"metadata": {"labels": {"app.kubernetes.io/component": c}},
                    "spec": {"template": {"spec": {"containers": [{"image": IMAGES[c].ref}]}}}}
                   for c in IMAGES]
    live = status.live_from(deployments, pods, {"backend": 1, "frontend": 1})
    notes = status.dev_notes(live)
    assert notes == ["backend dev: synced from working tree 3f2a1b9c0d4e, not image abc123",
                     "frontend dev mode: image def456's code, not synced yet"]
    assert status.contradictions(live, {c: i.ref for c, i in IMAGES.items()}) == []
    passed = GateResult("deploy")
    assert status.gate_row("deploy", passed, "", [], notes).verdict == "pass; " + "; ".join(notes)
    assert status.gate_row("verify", GateResult("verify"), "", [], notes).verdict == "pass"


class PodLister:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self.pods


@pytest.mark.parametrize("code", ["3f2a1b9c0d4e", ""])
def test_verify_image_identity_fails_on_dev_pods_and_says_how_to_return(tmp_path: Path, code: str) -> None:
    ctx = VerifyContext(settings_in(tmp_path).settings, "http://127.0.0.1:9", log=lambda _: None,
                        images=IMAGES)
    ctx.kube = PodLister([app_pod("b-1", "backend", code=code), app_pod("f-1", "frontend", dev=False)])  # type: ignore[assignment]
    [check] = check_image_identity(ctx)
    assert check.verdict is Verdict.FAIL
    assert check.fix == DEV_PODS_FIX == "run `inv up` (or `inv deploy`) to return to the built images"
    note = (f"dev: synced from working tree {code}, not image abc123" if code
            else "dev mode: image abc123's code, not synced yet")
    assert f"dev pods (live update): b-1 {note}" in check.evidence
    ctx.kube = PodLister([app_pod("b-1", "backend", dev=False), app_pod("f-1", "frontend", dev=False)])  # type: ignore[assignment]
    [normal] = check_image_identity(ctx)
    assert normal.verdict is Verdict.PASS, normal.evidence


def test_the_dev_gate_details_default_off() -> None:
    from todo_deploy.gate_details import DeployDetails, HelmDetails

    assert DeployDetails().dev is False and HelmDetails().dev is False
    assert SimpleNamespace(**DeployDetails(dev=True).as_dict()).dev is True


def test_the_exec_clients_are_kept_for_the_next_sync_and_never_shared_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    class CountingKube:
        def __init__(self, context: str) -> None:
            self.api = object()
            made.append(self.api)

    in_use: set[int] = set()
    overlap = threading.Barrier(2, timeout=5)

    def fake_exec(api: object, namespace: str, pod: str, container: str, argv: list[str],
                  timeout: float) -> tuple[int, str, str]:
        assert id(api) not in in_use, "one client used by two execs at once"
        in_use.add(id(api))
        overlap.wait()
        in_use.discard(id(api))
        return 0, ok_line(), ""

    monkeypatch.setattr(live_update, "Kube", CountingKube)
    monkeypatch.setattr(live_update, "exec_in_pod", fake_exec)
    pod_exec = live_update.PodExec("ctx", "ns")
    pod_exec.warm(2)
    pods = {"backend": [app_pod("b-1", "backend"), app_pod("b-2", "backend")]}
    for _ in range(3):
        results = live_update.run_syncs(pods, {"backend": ["python"]}, pod_exec)
        assert all(r.ok for r in results)
    assert len(made) == 2  # warmed once, reused by every later sync


def test_a_dev_render_labels_the_app_pods_as_status_and_verify_read_them(tmp_path: Path) -> None:
    settings = settings_in(tmp_path).settings
    dev = manifests.render_manifests(settings, IMAGES, dev=True)
    templates = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]
                 for o in dev if o["kind"] == "Deployment"}
    for component in ("backend", "frontend"):
        assert templates[component]["metadata"]["labels"][DEV_LABEL] == "true"
        assert live_update.is_dev(templates[component])
    normal = [o for o in manifests.render_manifests(settings, IMAGES) if o["kind"] == "Deployment"]
    assert not any(live_update.is_dev(o["spec"]["template"]) for o in normal)


def test_inv_up_dev_deploys_in_dev_mode_then_enters_the_watch_loop_without_a_second_deploy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoke import Context

    from todo_deploy import watch as watch_module
    from todo_deploy.cli import up as up_module

    loaded = settings_in(tmp_path)
    asked: list[conductor.UpOptions] = []
    watched: list[dict[str, Any]] = []
    monkeypatch.setattr(up_module, "load_or_exit", lambda: loaded)
    def up(_loaded: LoadedSettings, options: conductor.UpOptions) -> bool:
        asked.append(options)
        return False  # --dev stops after the deploy

    def watch(_loaded: LoadedSettings, **kwargs: Any) -> int:
        watched.append(kwargs)
        return 0

    monkeypatch.setattr(conductor, "up", up)
    monkeypatch.setattr(watch_module, "watch", watch)
    up_module.up(Context(), dev=True)
    assert asked[0].dev is True
    assert [(w["dev"], w["deploy_first"]) for w in watched] == [(True, False)]
    up_module.up(Context())  # without --dev: no watch loop
    assert asked[1].dev is False and len(watched) == 1


def test_the_deploy_stages_pass_dev_to_the_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from todo_deploy.stages import raw_deploy

    renders: list[bool] = []

    def render(*args: Any, dev: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
        renders.append(dev)
        raise raw_deploy.KubeError(0, "stop here")

    class Connected:
        context = "test"

        def capabilities(self) -> None:
            return None

    loaded = settings_in(tmp_path)
    from todo_deploy.artifacts import save_images

    save_images(loaded.state_dir, IMAGES)
    monkeypatch.setattr(raw_deploy.manifests, "render_manifests", render)
    monkeypatch.setattr(raw_deploy, "live_node_port", lambda kube, settings: 0)
    for dev in (True, False):
        gate = raw_deploy.run(loaded, kube=Connected(), log=lambda _: None, dev=dev)  # type: ignore[arg-type]
        assert gate.details["dev"] is dev and not gate.passed
    assert renders == [True, False]


def test_inv_status_prints_the_dev_pods_on_the_deploy_row_and_json_carries_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from todo_deploy.cli import core
    from todo_deploy.gates import Check, save, scopes_for

    loaded = settings_in(tmp_path)
    scopes = scopes_for(loaded.settings)
    ok = [Check("rollout complete", Verdict.PASS, "1/1 ready")]
    refs = {c: i.ref for c, i in IMAGES.items()}
    save(loaded.state_dir, GateResult("deploy", ok, scope=scopes["deploy"], basis="b1",
                                      details={"images": refs, "dev": True}))
    deployments = [{"metadata": {"labels": {"app.kubernetes.io/component": c}},
                    "spec": {"template": {"spec": {"containers": [{"image": refs[c]}]}}}} for c in refs]
    pods = [app_pod("b-1", "backend", code="3f2a1b9c0d4e"), app_pod("f-1", "frontend", dev=False)]
    table = status.build_table(loaded, read=lambda s: status.Live(
        status.live_from(deployments, pods, {"backend": 1, "frontend": 1})))
    monkeypatch.setattr("todo_deploy.console.console", lambda: Console(width=250))
    core.print_status(table)
    printed = capsys.readouterr().out
    note = "backend dev: synced from working tree 3f2a1b9c0d4e, not image abc123"
    assert f"pass; {note}" in printed
    assert table.compared.endswith(f"it matches the records; {note}")
    assert core.status_json(table)["deploy"]["dev"] == [note]
