"""Pipeline timings: ours against the commands a user would type, side by side in one run.

Everything runs on a private copy of docker/ and app/ (TODO_DEPLOY_ROOT points at it), so
the edits never touch the repository that other people work in, and the settings/state
(.env.secrets, .state/) are throw-away. Two scratch namespaces (BENCH_PREFIX starts their
names, default "bench-"): ours (deployed by the workflow) and the hand-typed one
(`kubectl apply -k` of a temp overlay that references k8s/ and sets namespace, images and
replicas; its three Secrets are created once beforehand, untimed).

Every scenario alternates its contestants round by round (each round in a rotated order)
and reports medians; the 1-minute load average is recorded at every round. Before each
edit, the two stacks settle (no pod terminating or pending: the node is shared, and a
predecessor's draining pods would otherwise hold the room a rollout needs). Our commands
run with Python's bytecode cache on, as on a user's machine. The exact command lines are
printed and kept in the result.

- warm: nothing changed. Hand = two cached `docker build`s + `kubectl apply -k` +
  `kubectl rollout status` x2. Ours = `inv up --until deploy` (one process: build,
  cluster, deploy) and `inv build` + `inv deploy` typed one after the other.
- edit: a one-line change in the backend (its `__version__`, which /api/meta answers),
  timed from the save until the frontend Service (the way a user comes in: the frontend
  relays /api/meta from the backend through its own connection pool) answers the new version
  three times in a row on new connections (a poller beside the commands, for every
  contestant); when the
  commands returned is recorded too. Hand = `docker build` + `kubectl set image` + `kubectl
  rollout status`. Ours = `inv up --until deploy` and `inv build` + `inv deploy`.
- watch: `inv watch` runs; each save of a one-line backend edit is timed until the frontend
  Service answers the new version (p50/p90 over the edits); then Ctrl-C, which must exit 0.
- dev (bench/live_update.py; alone: `python -m bench pipeline --only dev`): deployed in dev
  mode, `inv watch --dev` against the hand-typed `kubectl cp` + SIGHUP of the supervisor,
  one-line backend and frontend edits, save to new code through the frontend (p50/p90).
- cold (BENCH_COLD=1): new content, a new namespace; `inv build --no-cache`, `inv cluster`,
  `inv deploy` timed one by one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, say, summary, target, write_result
from bench.stack import delete_namespace, kubectl, kubectl_json, scratch_environ

PREFIX = os.environ.get("BENCH_PREFIX", "bench-")
WARM_ROUNDS = int(os.environ.get("BENCH_WARM_ROUNDS", "7"))
EDIT_ROUNDS = int(os.environ.get("BENCH_EDIT_ROUNDS", "7"))
WATCH_EDITS = int(os.environ.get("BENCH_WATCH_EDITS", "7"))
COLD = os.environ.get("BENCH_COLD", "1") == "1"
HAND_RELEASE = "todo-chatbot"  # the kustomize base's own names
EDIT_FILE = Path("app/backend/todo_api/__init__.py")
VERSION_LINE = re.compile(r'^__version__ = ".*"$', re.MULTILINE)
INV = shutil.which("inv") or "inv"


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def quantiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else values * 9
    return {"p50": round(statistics.median(values), 3), "p90": round(cuts[8], 3), **summary(values)}


class Workspace:
    """A private source copy + settings root, and the two namespaces."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="todo-bench-pipeline-"))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv", "*.egg-info")
        shutil.copytree(REPO / "docker", self.root / "docker", ignore=ignore)
        shutil.copytree(REPO / "app", self.root / "app", ignore=ignore)  # both apps and common/
        tag = secrets.token_hex(3)
        self.ours_ns = f"{PREFIX}ours-{tag}"
        self.hand_ns = f"{PREFIX}hand-{tag}"
        self.release = f"{PREFIX}todo" if PREFIX != "bench-" else "todo"
        self.edits = 0
        self.commands: dict[str, list[str]] = {}

    def env(self, namespace: str, release: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(scratch_environ(namespace, release, FRONTEND_REPLICAS="1"))
        env["TODO_DEPLOY_ROOT"] = str(self.root)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["DOCKER_BUILDKIT"] = "0"
        # As on a user's machine, Python keeps the bytecode it compiles (this agent's
        # shell turns that off, which would recompile the workflow on every command).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def ours_env(self) -> dict[str, str]:
        return self.env(self.ours_ns, self.release)

    def inv(self, *args: str, timeout: float = 900) -> float:
        """Run one `inv` task the way a user does (the project's tasks.py); its wall time."""
        argv = [INV, "-r", str(REPO), *args]
        started = time.perf_counter()
        result = subprocess.run(argv, env=self.ours_env(), capture_output=True, text=True,
                                timeout=timeout, check=False)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"inv {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        return seconds

    def edit(self) -> str:
        """A one-line change of the backend's version (what /api/meta answers)."""
        self.edits += 1
        version = f"0.1.0+bench.{self.edits}.{secrets.token_hex(3)}"
        path = self.root / EDIT_FILE
        path.write_text(VERSION_LINE.sub(f'__version__ = "{version}"', path.read_text()))
        return version

    def gate(self, stage: str) -> dict[str, Any]:
        try:
            return json.loads((self.root / ".state" / f"{stage}.json").read_text())
        except (OSError, ValueError):
            return {}

    def phases(self) -> dict[str, Any]:
        """The last build and deploy gates' phase timings."""
        return {stage: self.gate(stage).get("details", {}).get("timings")
                for stage in ("build", "deploy")}

    def close(self) -> None:
        for ns in (self.ours_ns, self.hand_ns):
            delete_namespace(ns, say)
        shutil.rmtree(self.root, ignore_errors=True)


# ---- the hand-typed sequences -------------------------------------------------------------


def docker_build_argv(ws: Workspace, component: str, tag: str) -> list[str]:
    from todo_deploy.config import load_settings
    from todo_deploy.images import COMPONENTS, build_args

    settings = load_settings(ws.root, scratch_environ(ws.hand_ns, HAND_RELEASE)).settings
    spec = COMPONENTS[component]
    args = [f"--build-arg={k}={v}" for k, v in build_args(settings).items()]
    return ["docker", "build", "-q", "-f", str(ws.root / spec.dockerfile), "-t",
            f"{spec.image_name}:{tag}", *args, str(ws.root / spec.context)]


def hand(ws: Workspace, argv: list[str], timeout: float = 900) -> None:
    result = subprocess.run(argv, env=ws.env(ws.hand_ns, HAND_RELEASE), capture_output=True,
                            text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {result.stderr[-2000:]}")


def overlay(ws: Workspace, tag: str) -> Path:
    from todo_deploy.chart import values as chart_values

    base = scratch_environ(ws.hand_ns, HAND_RELEASE)
    pg_repo, pg_tag = chart_values.split_image(base["POSTGRES_IMAGE"])
    folder = ws.root / "overlay"
    folder.mkdir(exist_ok=True)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {ws.hand_ns}\n"
        f"resources:\n  - {os.path.relpath(REPO / 'k8s', folder)}\n"
        "images:\n"
        f"  - {{name: todo-backend, newTag: \"{tag}\"}}\n"
        f"  - {{name: todo-frontend, newTag: \"{tag}\"}}\n"
        f"  - {{name: postgres, newName: {pg_repo}, newTag: \"{pg_tag}\"}}\n"
        "patches:\n  - path: replicas.yaml\n")
    (folder / "replicas.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: todo-chatbot-frontend, namespace: todo}\n"
        "spec: {replicas: 1}\n")
    return folder


def hand_warm_commands(ws: Workspace, folder: Path, tag: str) -> list[list[str]]:
    return [
        docker_build_argv(ws, "backend", tag),
        docker_build_argv(ws, "frontend", tag),
        ["kubectl", "apply", "-k", str(folder)],
        *[["kubectl", "-n", ws.hand_ns, "rollout", "status",
           f"deployment/{HAND_RELEASE}-{c}", "--timeout=300s"] for c in ("backend", "frontend")],
    ]


def hand_edit_commands(ws: Workspace, tag: str) -> list[list[str]]:
    return [
        docker_build_argv(ws, "backend", tag),
        ["kubectl", "-n", ws.hand_ns, "set", "image", f"deployment/{HAND_RELEASE}-backend",
         f"backend=todo-backend:{tag}"],
        ["kubectl", "-n", ws.hand_ns, "rollout", "status", f"deployment/{HAND_RELEASE}-backend",
         "--timeout=300s"],
    ]


def hand_setup(ws: Workspace, tag: str) -> Path:
    """Untimed: namespace + the three Secrets, then one full apply so the stack is up."""
    from todo_deploy.chart import values as chart_values
    from todo_deploy.config import load_settings

    folder = overlay(ws, tag)
    for component in ("backend", "frontend"):
        hand(ws, docker_build_argv(ws, component, tag))
    rendered = kubectl("kustomize", str(folder)).stdout
    namespace_doc = next((d for d in rendered.split("\n---\n") if "kind: Namespace" in d), "")
    if namespace_doc:
        kubectl("apply", "-f", "-", input_text=namespace_doc)
    else:
        kubectl("create", "namespace", ws.hand_ns)
    settings = load_settings(ws.root, scratch_environ(ws.hand_ns, HAND_RELEASE)).settings
    manifests = chart_values.secret_manifests(settings)
    kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": manifests}))
    for argv in hand_warm_commands(ws, folder, tag)[2:]:
        hand(ws, argv, timeout=400)
    return folder


def serving(namespace: str, release: str, version: str, timeout: float = 300,
            transport: httpx.BaseTransport | None = None) -> None:
    """The frontend Service answers /api/meta with `version` three times in a row, each on a
    new connection (as a new visitor, whichever frontend pod it reaches). Through the frontend,
    as a user sees it: the frontend's own kept-alive connections to the backend may still reach
    an old backend pod after the rollout, which the backend's Service alone would not show."""
    svc = kubectl_json("-n", namespace, "get", "service", f"{release}-frontend")
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/api/meta"
    deadline = time.monotonic() + timeout
    streak = 0
    with httpx.Client(timeout=2, limits=httpx.Limits(max_keepalive_connections=0),
                      transport=transport) as client:
        while time.monotonic() < deadline:
            try:
                got = client.get(url).json().get("version")
            except (httpx.HTTPError, ValueError):
                got = None
            streak = streak + 1 if got == version else 0
            if streak >= 3:
                return
            time.sleep(0.05)
    raise RuntimeError(f"{namespace}/{release}-frontend never answered version {version}")


# ---- the scenarios ---------------------------------------------------------------------------


def settle(ws: Workspace, timeout: float = 90) -> float:
    """Untimed, before each contestant: wait until no pod of either stack is still
    terminating or pending, so that no contestant waits for room its predecessor's
    old pods still hold on the (shared) node. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        busy = [p for ns in (ws.ours_ns, ws.hand_ns)
                for p in kubectl_json("-n", ns, "get", "pods").get("items", [])
                if p["metadata"].get("deletionTimestamp")
                or p.get("status", {}).get("phase") == "Pending"]
        if not busy:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 2)


def alternate(contestants: dict[str, Callable[[], float]], rounds: int,
              label: str, before: Callable[[], float] | None = None) -> dict[str, Any]:
    """Each round runs every contestant once, in a rotated order; medians per contestant.
    `before` (untimed) runs before each contestant."""
    names = list(contestants)
    times: dict[str, list[float]] = {n: [] for n in names}
    loads = []
    settled: list[float] = []
    for i in range(rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        loads.append(load1())
        for name in order:
            if before is not None:
                settled.append(before())
            times[name].append(round(contestants[name](), 3))
        say(f"{label} round {i + 1}/{rounds} (load {loads[-1]}): "
            + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names))
    return {"seconds": times, "summary": {n: summary(v) for n, v in times.items()},
            "load_1min_per_round": loads, "settle_waits_s": settled}


def measure_warm(ws: Workspace, folder: Path, tag: str, rounds: int) -> dict[str, Any]:
    commands = hand_warm_commands(ws, folder, tag)

    def hand_run() -> float:
        started = time.perf_counter()
        for argv in commands:
            hand(ws, argv)
        return time.perf_counter() - started

    def up() -> float:
        return ws.inv("up", "--until", "deploy")

    def separate() -> float:
        return ws.inv("build") + ws.inv("deploy")

    result = alternate({"hand": hand_run, "ours_up": up, "ours_separate": separate}, rounds, "warm")
    result["phases_last"] = ws.phases()
    result["deploy_details_last"] = {
        k: ws.gate("deploy").get("details", {}).get(k) for k in ("applied", "unchanged", "changed")}
    return result


def timed_edit(ws: Workspace, namespace: str, release: str,
               commands: Callable[[float], None]) -> tuple[float, float]:
    """Save a one-line edit, run `commands` (given the save's perf_counter), and watch the
    Service from the save on (a poller beside the commands): (seconds until the new code
    serves, until the commands returned)."""
    version = ws.edit()
    started = time.perf_counter()
    served: list[float] = []
    failed: list[BaseException] = []

    def poll() -> None:
        try:
            serving(namespace, release, version)
            served.append(time.perf_counter() - started)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failed.append(exc)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    commands(started)
    done = time.perf_counter() - started
    poller.join(330)
    if failed or not served:
        raise RuntimeError(f"{namespace}: the new code never served: {failed}")
    return served[0], done


def apply_offset(deploy_gate: dict[str, Any]) -> float | None:
    """Seconds from the deploying process's start to the end of its last apply phase."""
    timings = deploy_gate.get("details", {}).get("timings") or {}
    applies = [p for p in timings.get("phases", []) if p["phase"].startswith("apply")]
    if not applies or timings.get("process_start_to_stage_s") is None:
        return None
    last = applies[-1]
    return timings["process_start_to_stage_s"] + last["start_s"] + last["duration_s"]


def measure_edit(ws: Workspace, rounds: int) -> dict[str, Any]:
    """Each contestant's time from the save to the new code serving; and, to account for
    it, when the rollout began (the hand's `kubectl set image` returned; our deploy's apply
    ended, from its gate's timeline) and each hand-typed command's return."""
    phases: dict[str, Any] = {}
    names = ("hand", "ours_up", "ours_separate")
    finished: dict[str, list[float]] = {n: [] for n in names}
    rollout_began: dict[str, list[float]] = {n: [] for n in names}
    served: dict[str, list[float]] = {n: [] for n in names}
    hand_returns: list[list[float]] = []

    def hand_run() -> float:
        tag = f"hand-edit-{ws.edits + 1}"
        returns: list[float] = []

        def commands(started: float) -> None:
            for argv in hand_edit_commands(ws, tag):
                hand(ws, argv)
                returns.append(round(time.perf_counter() - started, 3))

        serving_s, done_s = timed_edit(ws, ws.hand_ns, HAND_RELEASE, commands)
        finished["hand"].append(round(done_s, 3))
        hand_returns.append(returns)
        rollout_began["hand"].append(returns[1])  # `kubectl set image` returned
        served["hand"].append(round(serving_s, 3))
        return serving_s

    def ours(name: str, *steps: tuple[str, ...]) -> Callable[[], float]:
        def run() -> float:
            spawned: list[float] = []

            def commands(started: float) -> None:
                for args in steps:
                    spawned.append(time.perf_counter() - started)
                    ws.inv(*args)

            serving_s, done_s = timed_edit(ws, ws.ours_ns, ws.release, commands)
            finished[name].append(round(done_s, 3))
            phases[" + ".join("inv " + " ".join(a) for a in steps)] = ws.phases()
            offset = apply_offset(ws.gate("deploy"))
            if offset is not None:
                rollout_began[name].append(round(spawned[-1] + offset, 3))
                served[name].append(round(serving_s, 3))
            return serving_s
        return run

    result = alternate({
        "hand": hand_run,
        "ours_up": ours("ours_up", ("up", "--until", "deploy")),
        "ours_separate": ours("ours_separate", ("build",), ("deploy",)),
    }, rounds, "edit (to serving)", before=lambda: settle(ws))
    result["commands_finished_s"] = finished
    result["commands_finished_summary"] = {n: summary(v) for n, v in finished.items()}
    result["phases_last"] = phases
    result["rollout_began_s"] = rollout_began
    result["hand_command_returns_s"] = hand_returns
    result["rollout_began_to_serving_s"] = {
        n: [round(s - b, 3) for s, b in zip(served[n], rollout_began[n], strict=True)] for n in names}
    result["accounting"] = {
        n: {"rollout_began": summary(rollout_began[n]),
            "rollout_began_to_serving": summary(result["rollout_began_to_serving_s"][n])}
        for n in names if rollout_began[n]}
    return result


def measure_watch(ws: Workspace, edits: int,
                  after_edit: Callable[[float], dict[str, Any]] | None = None) -> dict[str, Any]:
    """`inv watch` in the background; each save timed until the new version answers.
    `after_edit(saved_at)` (epoch seconds of the save), once it serves: that edit's details."""
    argv = [INV, "-r", str(REPO), "watch"]
    proc = subprocess.Popen(argv, env=ws.ours_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("watching "):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError("inv watch did not start:\n" + "\n".join(lines[-30:]))
    times, loads, outputs, details = [], [], [], []
    try:
        for i in range(edits):
            time.sleep(1)  # the watcher is idle again
            settle(ws)
            loads.append(load1())
            mark = len(lines)
            version = ws.edit()
            saved_at, started = time.time(), time.perf_counter()
            serving(ws.ours_ns, ws.release, version, timeout=240)
            times.append(round(time.perf_counter() - started, 3))
            if after_edit is not None:
                details.append(after_edit(saved_at))
            deadline = time.monotonic() + 60  # the smoke test and gates finish after serving
            while not any(line.startswith("watch: ") and "serving" in line or "FAILED" in line
                          for line in lines[mark:]) and time.monotonic() < deadline:
                time.sleep(0.2)
            outputs.append([line for line in lines[mark:] if line.startswith(("watch", "deploy ["))])
            say(f"watch edit {i + 1}/{edits} (load {loads[-1]}): new code serving after "
                f"{times[-1]:.2f} s")
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        reader.join(5)
    return {"command": shlex.join(["inv", "watch"]), "save_to_serving_s": times,
            "summary": quantiles(times), "load_1min_per_edit": loads,
            "ctrl_c_exit_code": code, "ctrl_c_last_line": lines[-1] if lines else "",
            "watch_output_last_edit": outputs[-1] if outputs else [], "watch_output_per_edit": outputs,
            **({"details_per_edit": details} if after_edit is not None else {})}


def measure_cold(ws: Workspace) -> dict[str, Any]:
    """New content in both images (no image exists under the new tags), a new namespace."""
    ws.edit()
    path = ws.root / "app/frontend/todo_web/__init__.py"
    path.write_text(path.read_text() + f"# bench cold {secrets.token_hex(4)}\n")
    delete_namespace(ws.ours_ns, say)
    stages: dict[str, float] = {}
    stages["build (--no-cache)"] = ws.inv("build", "--no-cache", timeout=1800)
    stages["cluster"] = ws.inv("cluster")
    stages["deploy"] = ws.inv("deploy")
    return {"stages_s": {k: round(v, 2) for k, v in stages.items()},
            "total_s": round(sum(stages.values()), 2), "phases": ws.phases()}


def run_dev_only() -> dict[str, Any]:
    """`python -m bench pipeline --only dev`: the dev-mode scenario alone, its own stack
    (ours only: the hand-typed sequence works on the same dev-mode pods);
    bench/results/pipeline-dev.json."""
    from bench import live_update

    ws = Workspace()
    try:
        at_start = load1()  # (the result's machine.load_avg_at_start is taken when it is written)
        say(f"workspace {ws.root}; ours in {ws.ours_ns} (release {ws.release}); load {at_start}")
        ws.inv("up", "--until", "deploy")  # inv watch --dev wants a deploy gate; it deploys in dev mode
        dev = {"load_1min_at_start": at_start, **live_update.measure(ws)}
        result = {"tasks": "the project's tasks.py", "python": sys.version.split()[0],
                  "commands": live_update.commands(ws), "dev": dev, "targets": dev["targets"]}
        write_result("pipeline-dev", result)
        return result
    finally:
        ws.close()


def run(only: str | None = None) -> dict[str, Any]:
    if only == "dev":
        return run_dev_only()
    from bench import live_update

    ws = Workspace()
    try:
        say(f"workspace {ws.root}; ours in {ws.ours_ns} (release {ws.release}), hand-typed in "
            f"{ws.hand_ns}; load {load1()}")
        hand_tag = "hand-" + secrets.token_hex(3)
        folder = hand_setup(ws, hand_tag)
        ws.inv("build")
        ws.inv("cluster")
        ws.inv("deploy")
        commands = {
            "hand_warm": [shlex.join(a) for a in hand_warm_commands(ws, folder, hand_tag)],
            "hand_edit": [shlex.join(a) for a in hand_edit_commands(ws, "<new tag>")],
            "ours_up": ["inv up --until deploy"],
            "ours_separate": ["inv build", "inv deploy"],
            "watch": ["inv watch"],
            "serving": [("GET http://<frontend ClusterIP>:<port>/api/meta (the frontend relays the "
                         "backend's), a new connection each, until it answers the new version 3 "
                         "times in a row")],
        }
        for name, lines in commands.items():
            say(f"{name}:\n  " + "\n  ".join(lines))
        say("both stacks are up; measuring warm no-change ...")
        warm = measure_warm(ws, folder, hand_tag, WARM_ROUNDS)
        say("measuring edit-to-serving ...")
        edit = measure_edit(ws, EDIT_ROUNDS)
        say("measuring inv watch ...")
        from bench.watch_serving import backend_start, median_marks  # it imports this module

        watch = measure_watch(ws, WATCH_EDITS, after_edit=lambda saved_at: backend_start(ws.ours_ns, saved_at))
        watch["backend_start_s_after_save_median"] = median_marks(watch["details_per_edit"])
        say("measuring dev mode (inv watch --dev against kubectl cp + SIGHUP) ...")
        dev = live_update.measure(ws)
        commands.update(live_update.commands(ws))
        cold = measure_cold(ws) if COLD else None
        w, e = warm["summary"], edit["summary"]
        result = {
            "tasks": "the project's tasks.py", "python": sys.version.split()[0],
            "commands": commands, "warm_no_change": warm, "edit_to_serving": edit,
            "watch": watch, "dev": dev, "cold": cold,
            "targets": [
                target("warm no-change: inv up --until deploy (median) <= hand-typed (median)",
                       w["ours_up"]["median"] / w["hand"]["median"], 1.0, "x"),
                target("warm no-change: inv build + inv deploy (median) <= hand-typed (median)",
                       w["ours_separate"]["median"] / w["hand"]["median"], 1.0, "x"),
                target("edit to serving: inv up --until deploy (median) <= hand-typed (median)",
                       e["ours_up"]["median"] / e["hand"]["median"], 1.0, "x"),
                target("edit to serving: inv build + inv deploy (median) <= hand-typed (median)",
                       e["ours_separate"]["median"] / e["hand"]["median"], 1.0, "x"),
                target("inv watch: save to new code serving through the frontend, median",
                       watch["summary"]["p50"], 6.0, "s"),
                *dev["targets"],
            ],
        }
        write_result("pipeline", result)
        return result
    finally:
        ws.close()
