"""Live update's pod side (issue 24) as real processes: `python -m todo_serving.devloop todo_api|todo_web`
serving a copy of the apps' code (as /opt/app in a dev-mode pod), `python -m todo_serving.devsync` swapping
code in. A poller hits the apps every 20 ms throughout: a swap must not fail one request."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx
import pytest
from todo_serving import devsync

from tests.frontend.conftest import BACKEND_DIR, COMMON_DIR, FRONTEND_DIR, SESSION_SECRET, free_port

SECRET = "test-secret-0123456789abcdef-0123456789"
PACKAGES = {"todo_api": BACKEND_DIR / "todo_api", "todo_web": FRONTEND_DIR / "todo_web"}
HEALTH = {"todo_api": "/health", "todo_web": "/healthz"}
META = "todo_api/routes/health.py"
READYZ = "todo_web/server.py"


def code_root(tmp: Path, app: str) -> Path:
    """What the initContainer seeds /opt/app with: the app's package and todo_serving."""
    root = tmp / f"{app}-code"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PACKAGES[app], root / app, ignore=ignore)
    shutil.copytree(COMMON_DIR / "todo_serving", root / "todo_serving", ignore=ignore)
    return root


def entry(path: str, text: str | None) -> str:
    return f"{path}=" + ("" if text is None else base64.b64encode(zlib.compress(text.encode())).decode())


@dataclass
class SyncRun:
    result: dict[str, object]
    seconds: float  # devsync's start to its exit
    returncode: int
    returned: float  # time.monotonic() when it returned


@dataclass
class Supervised:
    app: str
    proc: subprocess.Popen[bytes]
    url: str
    root: Path
    log: Path

    def text(self, path: str) -> str:
        return (self.root / path).read_text()

    def sync(self, generation: str, files: dict[str, str | None]) -> SyncRun:
        env = {**os.environ, "PYTHONPATH": str(self.root), "TODO_DEV_SUPERVISOR_PID": str(self.proc.pid)}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "todo_serving.devsync", generation,
                               *(entry(p, t) for p, t in files.items())],
                              check=False, env=env, capture_output=True, text=True, timeout=60)
        returned = time.monotonic()
        assert len(done.stdout.splitlines()) == 1, done.stdout + done.stderr
        return SyncRun(json.loads(done.stdout), returned - started, done.returncode, returned)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def launch(tmp: Path, app: str, **env: str) -> Supervised:
    root = code_root(tmp, app)
    port = free_port()
    log = tmp / f"{app}-devloop-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(root), "HOST": "127.0.0.1", "PORT": str(port), **env}
    proc = subprocess.Popen([sys.executable, "-m", "todo_serving.devloop", app], cwd=tmp, env=full_env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return Supervised(app, proc, f"http://127.0.0.1:{port}", root, log)


def wait_serving(app: Supervised) -> Supervised:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            raise RuntimeError(f"devloop {app.app} exited with {app.proc.returncode}:\n{app.log.read_text()[-3000:]}")
        try:
            if httpx.get(app.url + HEALTH[app.app], timeout=1).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    app.proc.kill()
    raise RuntimeError(f"devloop {app.app} did not answer:\n{app.log.read_text()[-3000:]}")


def start_supervised(tmp: Path, app: str, **env: str) -> Supervised:
    return wait_serving(launch(tmp, app, **env))


def backend_env(tmp: Path) -> dict[str, str]:
    database = f"sqlite:///{tmp / 'todo.db'}"
    env = {"AUTH_SECRET": SECRET, "DATABASE_URL": database, "LLM_PROVIDER": "offline", "DRAIN_SECONDS": "1"}
    subprocess.run([sys.executable, "-m", "todo_api", "migrate"], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join([str(BACKEND_DIR), str(COMMON_DIR)]), **env})
    return env


@dataclass
class Poller:
    """GETs each path every 20 ms on one kept-alive client (as the frontend talks to the backend)."""

    url: str
    paths: tuple[str, ...]
    every: float = 0.02
    errors: list[str] = field(default_factory=list)
    answers: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stopped.is_set():
                for path in self.paths:
                    try:
                        status = client.get(path).status_code
                    except httpx.HTTPError as exc:
                        self.errors.append(f"{path}: {exc!r}")
                        continue
                    self.answers += 1
                    if status != 200:
                        self.errors.append(f"{path}: {status}")
                time.sleep(self.every)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def first_change(url: str, path: str, changed: object, *, timeout: float = 5.0) -> float:
    """When (time.monotonic()) a fresh connection's GET `path` first shows `changed(response)`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(url + path, timeout=5)
        if changed(response):  # type: ignore[operator]
            return time.monotonic()
        time.sleep(0.01)
    raise AssertionError(f"{path} did not change within {timeout}s")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    tmp = tmp_path_factory.mktemp("devloop-api")
    supervised = start_supervised(tmp, "todo_api", **backend_env(tmp))
    yield supervised
    supervised.stop()


@pytest.fixture(scope="module")
def web(api: Supervised, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    tmp = tmp_path_factory.mktemp("devloop-web")
    supervised = start_supervised(tmp, "todo_web", SESSION_SECRET=SESSION_SECRET, BACKEND_URL=api.url,
                                  DRAIN_SECONDS="1")
    yield supervised
    supervised.stop()


def swap_five_times(app: Supervised, path: str, old: str, new: str, probe: str, shows: str) -> list[float]:
    """Five syncs of `path` with `old` replaced by `new` % i: each served within 1 s of devsync's return."""
    original = app.text(path)
    times = []
    for i in range(1, 6):
        generation = f"{app.app}-g{i}"
        run = app.sync(generation, {path: original.replace(old, new % i)})
        assert (run.returncode, run.result["ok"]) == (0, True), run.result
        assert run.result["generation"] == generation
        served = first_change(app.url, probe, lambda r, i=i: shows % i in r.text)
        assert served - run.returned < 1.0, f"sync {i}: the new code served {served - run.returned:.2f}s late"
        times.append(run.seconds)
    return times


def test_backend_sync_serves_the_new_code_and_no_request_fails(api: Supervised) -> None:
    assert httpx.get(api.url + "/api/meta").json()["code"] == "image"
    # It forks: a thread started by a preloaded library would be missing (with its locks) in each child.
    assert "Threads:\t1\n" in Path(f"/proc/{api.proc.pid}/status").read_text()
    with Poller(api.url, ("/health", "/api/meta")) as poller:
        times = swap_five_times(api, META, '"pod": POD,', '"pod": POD, "edit": "v%d",', "/api/meta", '"edit":"v%d"')
    meta = httpx.get(api.url + "/api/meta").json()
    assert (meta["code"], meta["edit"]) == ("todo_api-g5", "v5")
    assert poller.errors == [], poller.errors
    assert poller.answers > 50
    print(f"\nbackend swap (devsync start -> result): median {statistics.median(times):.3f}s of {times}")
    assert not list((api.root / ".dev").glob("backup-*")), "a successful sync's backup is left behind"


def test_backend_import_error_keeps_the_old_code_and_restores_the_file(api: Supervised) -> None:
    before = httpx.get(api.url + "/api/meta").json()
    good = api.text(META)
    broken = good.replace("from todo_api import __version__\n",
                          "from todo_api import __version__\nfrom todo_api.deps import NoSuchThing\n")
    assert broken != good
    with Poller(api.url, ("/health", "/api/meta")) as poller:
        run = api.sync("broken1", {META: broken, "todo_api/added_by_sync.py": "X = 1\n"})
    assert (run.returncode, run.result["ok"]) == (1, False)
    error = str(run.result["error"])
    assert "ImportError: cannot import name 'NoSuchThing'" in error, error
    assert httpx.get(api.url + "/api/meta").json() == before  # the old code, untouched
    assert poller.errors == [], poller.errors
    assert api.text(META) == good  # restored on disk
    assert not (api.root / "todo_api" / "added_by_sync.py").exists()  # what the sync added is gone
    assert not list((api.root / ".dev").glob("backup-*"))


def test_frontend_sync_serves_the_new_code_and_says_which(api: Supervised, web: Supervised) -> None:
    meta = httpx.get(web.url + "/api/meta")
    assert meta.headers["x-code-version"] == "image"
    # The body is the backend's. Its first answer may come over the frontend's kept-alive
    # connection to a backend child an earlier test's swap retired (it answers, then closes):
    # the backend's code is what the frontend shows within a second.
    backend_code = httpx.get(api.url + "/api/meta").json()["code"]
    deadline = time.monotonic() + 2
    while meta.json()["code"] != backend_code and time.monotonic() < deadline:
        time.sleep(0.05)
        meta = httpx.get(web.url + "/api/meta")
    assert meta.json()["code"] == backend_code
    with Poller(web.url, ("/healthz", "/readyz", "/api/meta")) as poller:
        times = swap_five_times(web, READYZ, 'PlainTextResponse("ready")', 'PlainTextResponse("ready-v%d")',
                                "/readyz", "ready-v%d")
    assert httpx.get(web.url + "/api/meta").headers["x-code-version"] == "todo_web-g5"
    assert poller.errors == [], poller.errors
    print(f"\nfrontend swap (devsync start -> result): median {statistics.median(times):.3f}s of {times}")


def test_sigterm_drains_the_serving_child_and_the_supervisor_exits_with_its_code(
        tmp_path: Path) -> None:
    app = start_supervised(tmp_path, "todo_api", **{**backend_env(tmp_path), "DRAIN_SECONDS": "2"})
    app.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with httpx.Client(base_url=app.url, timeout=2) as client:
        assert client.get("/ready").status_code == 503  # draining: readiness fails ...
        assert client.get("/api/meta").status_code == 200  # ... while requests are still served
    assert app.proc.wait(timeout=20) == 0
    assert '"drain finished, shutting down"' in app.log.read_text()


def test_a_child_that_dies_is_restarted_once_and_a_second_failure_exits_1(tmp_path: Path) -> None:
    app = start_supervised(tmp_path, "todo_api", **backend_env(tmp_path))
    try:
        first = children(app.proc.pid)
        os.kill(first[0], signal.SIGKILL)
        first_change(app.url, "/health", lambda r: children(app.proc.pid) not in ([], first), timeout=15)
        assert httpx.get(app.url + "/api/meta").json()["code"] == "image"  # the same code, started again
        restarted = children(app.proc.pid)
        # The code on disk breaks (nothing restores it: no sync did this), the child dies: its restart
        # fails, the supervisor gives up (the kubelet restarts the container).
        (app.root / META).write_text("import no_such_module_devloop\n")
        first_change(app.url, "/api/meta", lambda r: "edit" not in r.text)  # still serving meanwhile
        os.kill(restarted[0], signal.SIGKILL)
        assert app.proc.wait(timeout=30) == 1
        assert "died again after a restart" in app.log.read_text()
    finally:
        app.stop()


def children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], check=False, capture_output=True,
                           text=True).stdout
    return [int(p) for p in found.split()]


@pytest.mark.parametrize("version", [None, "3f2a9c1e"])
def test_the_frontend_says_which_code_serves_only_in_dev_mode(
        version: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient
    from todo_web.server import create_app
    from todo_web.settings import Settings

    if version is None:
        monkeypatch.delenv("TODO_CODE_VERSION", raising=False)
    else:
        monkeypatch.setenv("TODO_CODE_VERSION", version)
    app = create_app(Settings(session_secret=SESSION_SECRET, backend_url="http://127.0.0.1:9"))
    with TestClient(app) as client:
        for path in ("/healthz", "/login", "/no-such-page"):
            assert client.get(path).headers.get("x-code-version") == version, path


def test_a_sighup_while_the_supervisor_preloads_is_held_until_it_can_act(tmp_path: Path) -> None:
    app = launch(tmp_path, "todo_api", **backend_env(tmp_path))
    try:
        (app.root / ".dev").mkdir()
        (app.root / ".dev" / "generation").write_text("early")
        time.sleep(0.5)  # importing the libraries (seconds): a SIGHUP's default action would end it
        app.proc.send_signal(signal.SIGHUP)
        wait_serving(app)
        result = devsync.wait_for_result(app.root, "early", 30)
        assert result is not None and result["ok"] is True, app.log.read_text()[-3000:]
        assert httpx.get(app.url + "/api/meta").json()["code"] == "early"
    finally:
        app.stop()


def test_backend_swaps_fail_no_request_through_the_frontend(api: Supervised, web: Supervised) -> None:
    """The frontend keeps its connections to the backend for 2 s of idleness: a retiring backend child must
    not close one under a request (a poller every 20 ms, and one that lets its connections idle ~1-2 s)."""
    original = api.text(META)
    with Poller(web.url, ("/api/meta",)) as busy, Poller(web.url, ("/api/meta",), every=1.3) as idle:
        for i in range(1, 6):
            run = api.sync(f"through-web-{i}", {META: original.replace('"pod": POD,', f'"pod": POD, "web": {i},')})
            assert run.result["ok"] is True, run.result
            time.sleep(0.7)
        time.sleep(3)
    assert busy.errors == [] and idle.errors == [], (busy.errors, idle.errors)
    assert httpx.get(web.url + "/api/meta").json()["web"] == 5


def test_frontend_import_error_keeps_the_old_code_and_restores_the_file(web: Supervised) -> None:
    before = httpx.get(web.url + "/readyz")
    good = web.text(READYZ)
    broken = good.replace("from . import __version__, pages, proxy\n",
                          "from . import __version__, pages, proxy\nfrom .pages import NoSuchThing\n")
    assert broken != good
    with Poller(web.url, ("/healthz", "/readyz")) as poller:
        run = web.sync("web-broken", {READYZ: broken})
    assert (run.returncode, run.result["ok"]) == (1, False)
    assert "ImportError: cannot import name 'NoSuchThing'" in str(run.result["error"]), run.result["error"]
    after = httpx.get(web.url + "/readyz")
    assert (after.text, after.headers["x-code-version"]) == (before.text, before.headers["x-code-version"])
    assert poller.errors == [], poller.errors
    assert web.text(READYZ) == good


def test_a_new_child_not_up_within_10_s_is_killed_and_the_sync_rolled_back(api: Supervised) -> None:
    before = httpx.get(api.url + "/api/meta").json()
    good = api.text(META)
    hanging = good.replace("from todo_api import __version__\n",
                           "from todo_api import __version__\nimport time\ntime.sleep(60)\n")
    run = api.sync("hangs", {META: hanging})
    assert (run.returncode, run.result["ok"]) == (1, False)
    assert str(run.result["error"]).startswith("the new code's process not up within 10s; the previous code "
                                               "keeps serving; restored todo_api/routes/health.py")
    assert 10 <= run.seconds < 15
    assert httpx.get(api.url + "/api/meta").json() == before
    assert api.text(META) == good
    assert len(children(api.proc.pid)) == 1  # the hanging one was killed (and reaped)
