"""`bench pipeline`'s dev-mode scenario (issue 24): save -> new code through the frontend.

Ours: `inv watch --dev` running (it deploys in dev mode first: the time until it watches is
recorded; `inv up --dev` would do the same and then stay in that loop); each save of a one-line edit (a marker comment line replaced,
or appended the first time) to a backend route file and to a frontend file is timed from
the file write until GET <frontend Service>/api/meta shows new code 3 times in a row, a new
connection each: the body's `code` (the backend's TODO_CODE_VERSION) for a backend edit,
the `X-Code-Version` header (the frontend's) for a frontend edit. "New" is a value the
stack did not show before the save (ours cannot know the workflow's GENERATION hash in
advance) and the same value each time.

Hand-typed, interleaved in the same rounds, on the same pods: the same kind of edit to the
user's own copy of the file (outside the watched tree, so the watcher does not see it),
then `kubectl get pods -l <component> -o name` and for each pod `kubectl cp` of the file into
its /opt/app/... and one `kubectl exec POD -c C -- sh -c 'mkdir -p /opt/app/.dev && printf %s G >
/opt/app/.dev/generation && kill -HUP 1'` (the supervisor, PID 1, reloads on SIGHUP and
reads the generation from that file; the image has no /bin/kill, the shell's builtin does
it), timed the same way until the frontend shows G.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, say, target
from bench.pipeline import INV, alternate, load1, quantiles, settle
from bench.stack import kubectl_json

EDITS = int(os.environ.get("BENCH_DEV_EDITS", "7"))
POD_ROOT = "/opt/app"
MARK = "# bench live update: "
STREAK = 3
SERVING_TIMEOUT_S = 60.0
DEV_LABEL = "todo-chatbot/dev"


@dataclass(frozen=True)
class Edited:
    """What one kind of edit touches: the file (relative to the source root and to the pod's
    /opt/app), and where the frontend's /api/meta shows which code serves it."""

    component: str
    source: Path
    in_pod: str

    def code(self, response: httpx.Response) -> str | None:
        if self.component == "frontend":
            return response.headers.get("x-code-version")
        try:
            found = response.json().get("code")
        except ValueError:
            return None
        return None if found is None else str(found)


EDITED = {
    "backend": Edited("backend", Path("app/backend/todo_api/routes/tasks.py"), "todo_api/routes/tasks.py"),
    "frontend": Edited("frontend", Path("app/frontend/todo_web/pages.py"), "todo_web/pages.py"),
}


def one_line_edit(text: str, token: str) -> str:
    """The marker line says `token` (replaced in place, or appended as the file's last line)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(MARK):
            lines[i] = f"{MARK}{token}\n"
            return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines) + f"{MARK}{token}\n"


class CodeProbe:
    """GET <url> on a new connection each time; which code answered (None: no answer)."""

    def __init__(self, url: str, edited: Edited, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.edited = edited
        self.client = httpx.Client(timeout=2, limits=httpx.Limits(max_keepalive_connections=0),
                                   transport=transport)

    def once(self) -> str | None:
        try:
            response = self.client.get(self.url)
        except httpx.HTTPError:
            return None
        return self.edited.code(response) if response.status_code == 200 else None

    def seen(self, times: int = 4) -> set[str | None]:
        return {self.once() for _ in range(times)}

    def wait_new(self, before: set[str | None], expected: str | None = None,
                 timeout: float = SERVING_TIMEOUT_S, pause: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> str:
        """Until one code not in `before` (and `expected` when given) answers STREAK times in
        a row; that code."""
        deadline = clock() + timeout
        streak, last = 0, None
        while clock() < deadline:
            got = self.once()
            fresh = got is not None and got not in before and expected in (None, got)
            streak = streak + 1 if fresh and got == last else (1 if fresh else 0)
            last = got if fresh else None
            if streak >= STREAK:
                return str(got)
            time.sleep(pause)
        raise RuntimeError(f"{self.url}: no new {self.edited.component} code within {timeout:g} s "
                           f"(before: {sorted(map(str, before))}, expected {expected})")

    def close(self) -> None:
        self.client.close()


def frontend_meta_url(namespace: str, release: str) -> str:
    svc = kubectl_json("-n", namespace, "get", "service", f"{release}-frontend")
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/api/meta"


# ---- the hand-typed sequence ------------------------------------------------------------------


def hand_commands(namespace: str, edited: Edited, pods: Iterable[str], container: str,
                  local: Path, generation: str) -> list[list[str]]:
    """For each pod: copy the file in, then write the generation and SIGHUP the supervisor."""
    reload = (f"mkdir -p {POD_ROOT}/.dev && printf %s {shlex.quote(generation)} > {POD_ROOT}/.dev/generation "
              "&& kill -HUP 1")
    argv: list[list[str]] = []
    for pod in pods:
        argv += [["kubectl", "cp", "-c", container, str(local), f"{namespace}/{pod}:{POD_ROOT}/{edited.in_pod}"],
                 ["kubectl", "-n", namespace, "exec", pod, "-c", container, "--", "sh", "-c", reload]]
    return argv


def list_pods_argv(namespace: str, component: str) -> list[str]:
    return ["kubectl", "-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/component={component}",
            "-o", "name"]


def run_checked(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr[-1500:]}")
    return done.stdout


# ---- `inv watch --dev` in the background ------------------------------------------------------


class WatchProcess:
    """`inv watch --dev` with its output collected; Ctrl-C at the end."""

    def __init__(self, argv: list[str], env: dict[str, str], ready_s: float = 600) -> None:
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        if not self.ready.wait(ready_s):
            self.proc.kill()
            raise RuntimeError(f"{shlex.join(argv)} did not start:\n" + "\n".join(self.lines[-30:]))
        self.started_s = round(time.perf_counter() - started, 2)  # its dev-mode deploy included
        if self.proc.poll() is not None:
            raise RuntimeError(f"{shlex.join(argv)} exited:\n" + "\n".join(self.lines[-30:]))

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("watching "):
                self.ready.set()

    def since(self, mark: int, settle_s: float = 10) -> list[str]:
        """The lines printed from `mark` on, once the edit's "serving"/failure line is out."""
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not any(
                "serving" in line or "FAILED" in line or "not ok" in line for line in self.lines[mark:]):
            time.sleep(0.1)
        return [line for line in self.lines[mark:] if line.startswith(("watch", "sync", "dev"))]

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        self.reader.join(5)
        return code, self.lines[-1] if self.lines else ""


# ---- the scenario -----------------------------------------------------------------------------


class DevScenario:
    """Ours (`inv watch --dev`) and the hand-typed sequence on one dev-mode stack."""

    def __init__(self, ws: Any, watch: WatchProcess) -> None:
        self.ws = ws
        self.watch = watch
        self.url = frontend_meta_url(ws.ours_ns, ws.release)
        self.hand_dir = Path(tempfile.mkdtemp(prefix="todo-bench-hand-"))
        self.hand_files = {kind: self.hand_dir / e.source.name for kind, e in EDITED.items()}
        for kind, e in EDITED.items():
            self.hand_files[kind].write_text((ws.root / e.source).read_text())
        self.containers = {kind: self.container(kind) for kind in EDITED}
        self.hand_returns: dict[str, list[list[float]]] = {kind: [] for kind in EDITED}
        self.watch_lines: dict[str, list[list[str]]] = {kind: [] for kind in EDITED}
        self.codes: dict[str, list[str]] = {}

    def container(self, component: str) -> str:
        pods = kubectl_json("-n", self.ws.ours_ns, "get", "pods", "-l",
                            f"app.kubernetes.io/component={component}")["items"]
        return str(pods[0]["spec"]["containers"][0]["name"])

    def ours(self, kind: str) -> Callable[[], float]:
        edited = EDITED[kind]

        def run() -> float:
            probe = CodeProbe(self.url, edited)
            try:
                before = probe.seen()
                mark = len(self.watch.lines)
                path = self.ws.root / edited.source
                text = one_line_edit(path.read_text(), secrets.token_hex(4))
                started = time.perf_counter()
                path.write_text(text)
                code = probe.wait_new(before)
                seconds = time.perf_counter() - started
            finally:
                probe.close()
            self.codes.setdefault(f"ours_{kind}", []).append(code)
            self.watch_lines[kind].append(self.watch.since(mark))
            return seconds
        return run

    def hand(self, kind: str) -> Callable[[], float]:
        edited = EDITED[kind]

        def run() -> float:
            generation = f"hand-{secrets.token_hex(4)}"
            local = self.hand_files[kind]
            text = one_line_edit(local.read_text(), generation)
            env = self.ws.ours_env()
            probe = CodeProbe(self.url, edited)
            returns: list[float] = []
            try:
                before = probe.seen()
                started = time.perf_counter()
                local.write_text(text)
                names = run_checked(list_pods_argv(self.ws.ours_ns, kind), env).split()
                returns.append(round(time.perf_counter() - started, 3))
                for argv in hand_commands(self.ws.ours_ns, edited, [n.split("/", 1)[-1] for n in names],
                                          self.containers[kind], local, generation):
                    run_checked(argv, env)
                    returns.append(round(time.perf_counter() - started, 3))
                probe.wait_new(before, expected=generation)
                seconds = time.perf_counter() - started
            finally:
                probe.close()
            self.hand_returns[kind].append(returns)
            return seconds
        return run

    def close(self) -> None:
        for path in self.hand_files.values():
            path.unlink(missing_ok=True)
        self.hand_dir.rmdir()


def replica_sets(namespace: str) -> list[str]:
    return sorted(rs["metadata"]["name"] for rs in kubectl_json("-n", namespace, "get", "replicasets")["items"])


def dev_pods(namespace: str) -> int:
    return len(kubectl_json("-n", namespace, "get", "pods", "-l", f"{DEV_LABEL}=true")["items"])


def ratios(summaries: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Ours over hand-typed, per kind of edit, for p50 and p90."""
    return {kind: {q: round(summaries[f"ours_{kind}"][q] / summaries[f"hand_{kind}"][q], 3)
                   for q in ("p50", "p90")}
            for kind in EDITED if f"ours_{kind}" in summaries and f"hand_{kind}" in summaries}


def targets(summaries: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    found = []
    for kind in EDITED:
        s = summaries[f"ours_{kind}"]
        found += [target(f"inv watch --dev, one-line {kind} edit: save to new code through the frontend, p50",
                         s["p50"], 2.0, "s"),
                  target(f"inv watch --dev, one-line {kind} edit: save to new code through the frontend, p90",
                         s["p90"], 3.0, "s")]
    return found


def commands(ws: Any) -> dict[str, list[str]]:
    example = hand_commands(ws.ours_ns, EDITED["backend"], ["POD"], "CONTAINER", Path("FILE"), "GENERATION")
    return {
        "ours_dev": ["inv watch --dev (running: it deployed in dev mode first); the file saved"],
        "hand_dev": [shlex.join(list_pods_argv(ws.ours_ns, "COMPONENT"))]
                    + [shlex.join(a) + "  # for each pod" for a in example],
        "dev_serving": [("GET http://<frontend ClusterIP>:<port>/api/meta, a new connection each, until "
                         "a new code (backend: body `code`; frontend: header X-Code-Version) answers "
                         f"{STREAK} times in a row")],
    }


def measure(ws: Any, edits: int = EDITS) -> dict[str, Any]:
    """`inv watch --dev` (deployed normally before: it deploys in dev mode), and `edits`
    rounds of the four contestants."""
    watch = WatchProcess([INV, "-r", str(REPO), "watch", "--dev"], ws.ours_env())
    settle(ws)  # the replaced (non-dev) pods gone: the hand-typed sequence lists the pods
    dev_count, rs_before = dev_pods(ws.ours_ns), replica_sets(ws.ours_ns)
    say(f"inv watch --dev watching after {watch.started_s} s (its dev-mode deploy); "
        f"{dev_count} pod(s) labelled {DEV_LABEL}=true")
    scenario = DevScenario(ws, watch)
    try:
        contestants = {f"{who}_{kind}": getattr(scenario, who)(kind)
                       for kind in EDITED for who in ("ours", "hand")}
        rounds = alternate(contestants, edits, "dev (save to new code)", before=lambda: pause(1.0))
    finally:
        exit_code, last_line = watch.stop()
        scenario.close()
    summaries = {name: quantiles(values) for name, values in rounds["seconds"].items()}
    for name, s in summaries.items():
        say(f"dev {name}: p50 {s['p50']} s, p90 {s['p90']} s")
    for kind, r in ratios(summaries).items():
        say(f"dev {kind}: ours / hand-typed p50 {r['p50']}x, p90 {r['p90']}x")
    return {"commands": commands(ws), "edits": edits, "files": {k: str(e.source) for k, e in EDITED.items()},
            "dev_pods": dev_count, "watch_dev_started_s": watch.started_s, "replicasets_unchanged": rs_before == replica_sets(ws.ours_ns),
            "seconds": rounds["seconds"], "summary": summaries, "ratio_ours_over_hand": ratios(summaries),
            "load_1min_per_round": rounds["load_1min_per_round"], "load_1min_at_end": load1(),
            "hand_command_returns_s": scenario.hand_returns, "ours_codes": scenario.codes,
            "watch_output_per_edit": scenario.watch_lines, "ctrl_c_exit_code": exit_code,
            "ctrl_c_last_line": last_line, "targets": targets(summaries)}


def pause(seconds: float) -> float:
    """Untimed between contestants: the watcher idle again, the old child drained."""
    time.sleep(seconds)
    return seconds
