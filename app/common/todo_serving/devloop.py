"""`python -m todo_serving.devloop todo_api|todo_web`: the app container's command in dev mode (live
update, issue 24). A supervisor that imports the app's heavy libraries once, opens the listening socket
once, and forks a child that imports the app's own code (never imported here, so each child reads it
afresh from the code root) and serves it with the app's normal server (its `__main__.build_server()`)
on that socket.

- SIGHUP (devsync.py, after writing a sync's files): a new child serves the generation in
  .dev/generation while the old one keeps serving. Once the new child's server has started and the
  app answered its own health route in process, the old child retires (SIGUSR1: stops accepting,
  each answer closes its connection, shutdown after RETIRE_SECONDS) and .dev/result-GEN.json says ok.
  A new child that exits, or is not up within READY_SECONDS, is killed, the sync's backups are put
  back, and the result says why (its last stderr lines).
- SIGTERM/SIGINT: passed to the serving child (which drains as in normal mode); the supervisor exits
  with its code.
- A child that dies on its own is started again once; if that one fails too, exit 1 (the kubelet
  restarts the container, whose initContainer seeds the image's code again).

No thread in the supervisor, ever: it forks."""

from __future__ import annotations

import asyncio
import collections
import gc
import importlib
import inspect
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from todo_serving import devsync

READY_SECONDS = 10.0
RETIRE_SECONDS = 1.0
STDERR_LINES = 10
FIRST_VERSION = "image"
OWN_PACKAGES = ("todo_api", "todo_web", "todo_serving")
HANDLED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


@dataclass(frozen=True)
class AppSpec:
    port: int  # the app's default PORT
    health: str  # answered in process by a new child before it takes over
    preload: tuple[str, ...]  # what the app imports at start, bar its own packages (python -X importtime)


COMMON_PRELOAD = (
    "anyio", "pydantic", "pydantic_settings", "starlette.applications", "starlette.routing",
    "starlette.middleware", "fastapi", "fastapi.routing", "fastapi.responses", "uvicorn", "uvicorn.config",
    "uvicorn.server", "uvicorn.lifespan.on", "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl", "httptools", "orjson", "uvloop",
)
APPS = {
    "todo_api": AppSpec(8000, "/health", COMMON_PRELOAD + (
        "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.ext.asyncio", "sqlalchemy.dialects.postgresql",
        "sqlalchemy.dialects.sqlite", "asyncpg", "psycopg", "psycopg_pool", "argon2", "jwt", "cryptography",
        "prometheus_client", "alembic", "mcp")),
    "todo_web": AppSpec(3000, "/healthz", COMMON_PRELOAD + (
        "httpx", "jinja2", "itsdangerous", "starlette.staticfiles", "starlette.templating",
        "fastapi.templating", "fastapi.staticfiles")),
}


def note(message: str, **fields: Any) -> None:
    """One JSON line on stdout, next to the app's own."""
    print(json.dumps({"level": "info", "logger": "todo_serving.devloop", "msg": message, **fields}),
          flush=True)


def modules_to_preload(app: str, spec: AppSpec, environ: dict[str, str] | os._Environ[str]) -> tuple[str, ...]:
    """The OpenAI SDKs (~0.5 s, tens of MB) only when the backend will use them (its llm_provider "auto"
    picks openai when a key is set)."""
    provider = environ.get("LLM_PROVIDER", "auto").lower()
    uses_openai = provider == "openai" or (provider == "auto" and bool(environ.get("OPENAI_API_KEY")))
    return spec.preload + (("openai", "agents") if app == "todo_api" and uses_openai else ())


def preload(modules: tuple[str, ...]) -> list[str]:
    """Import what the app will import, so that each child finds it loaded; the modules that would not."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library (the OpenAI SDK ...): the child imports it if it needs it
            missing.append(name)
    return missing


def listen(host: str, port: int) -> socket.socket:
    """The one listening socket every child serves on (uvicorn's backlog, which both apps keep)."""
    import uvicorn  # preloaded: no cost

    backlog = int(inspect.signature(uvicorn.Config).parameters["backlog"].default)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def serving_file(root: Path) -> Path:
    return devsync.dev_dir(root) / "serving"


def first_version(root: Path) -> str:
    """"image", unless a sync was served before the container restarted (the emptyDir keeps the synced
    code until the pod goes, and the initContainer seeds it again only for a new pod)."""
    try:
        return devsync.check_generation(serving_file(root).read_text().strip())
    except (OSError, devsync.SyncRefused):
        return FIRST_VERSION


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


# --- the child ---------------------------------------------------------------------------------


def forget_own_modules() -> None:
    """The child imports todo_serving afresh too (a sync may have changed it); this module's functions
    keep running from the supervisor's copy."""
    for name in list(sys.modules):
        if name.split(".")[0] in OWN_PACKAGES:
            del sys.modules[name]


async def asgi_get(app: Any, path: str) -> int:
    """GET `path` from the ASGI app in process (over the shared socket the old child might answer)."""
    status = 0
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"devloop")], "client": ("127.0.0.1", 0),
             "server": ("127.0.0.1", 0), "state": {}}
    disconnected = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not disconnected.is_set():
            disconnected.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await asyncio.wait_for(app(scope, receive, send), timeout=READY_SECONDS)
    return status


def retire(server: Any, shutdown: Any) -> None:
    """SIGUSR1, on the loop: the new child serves now. Stop accepting at once, answer what is in
    flight with `connection: close`, shut down after RETIRE_SECONDS (readiness stays: the pod is fine)."""
    if server.drain_deadline is not None or server.should_exit:
        return
    for listener in getattr(server, "servers", []):
        listener.close()
    shutdown.begin_draining(server)
    shutdown.close_after_responses(server)
    server.drain_deadline = time.monotonic() + RETIRE_SECONDS


async def serve_and_report(server: Any, sock: socket.socket, health: str, ready_fd: int) -> None:
    # `sockets=`, as uvicorn's own workers get theirs: its `fd=` would wrap the TCP socket as AF_UNIX.
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        status = await asgi_get(server.config.loaded_app, health)
        if status != 200:
            print(f"devloop: GET {health} answered {status} in process", file=sys.stderr, flush=True)
            server.should_exit = True
        else:
            shutdown = importlib.import_module("todo_serving.shutdown")
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, retire, server, shutdown)
            os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    await serving


def run_child(app: str, spec: AppSpec, sock: socket.socket, version: str, ready_fd: int) -> int:
    os.environ["TODO_CODE_VERSION"] = version
    forget_own_modules()
    try:
        server = importlib.import_module(f"{app}.__main__").build_server()
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(serve_and_report(server, sock, spec.health, ready_fd))
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - os._exit follows: the traceback is printed here or nowhere
        traceback.print_exc()
        return 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()


def become_child(stderr_fd: int, inherited: list[int]) -> None:
    signal.set_wakeup_fd(-1)
    for sig in (*HANDLED, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    for fd in inherited:
        os.close(fd)
    os.dup2(stderr_fd, 2)
    os.close(stderr_fd)


# --- the supervisor ----------------------------------------------------------------------------


@dataclass
class Child:
    pid: int
    version: str
    stderr: int | None  # None once closed
    ready: int | None
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_LINES))
    partial: bytes = b""
    is_ready: bool = False
    gone: bool = False  # reaped

    def take_stderr(self, data: bytes) -> None:
        os.write(2, data)  # through to the container's log
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        self.tail.extend(line.decode(errors="replace") for line in lines if line.strip())

    def last_lines(self) -> str:
        rest = [self.partial.decode(errors="replace")] if self.partial.strip() else []
        return "\n".join([*self.tail, *rest][-STDERR_LINES:])


class Supervisor:
    def __init__(self, app: str, spec: AppSpec, sock: socket.socket, root: Path) -> None:
        self.app, self.spec, self.sock, self.root = app, spec, sock, root
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.current: Child | None = None
        self.pending: Child | None = None
        self.pending_since = 0.0
        self.retiring: dict[int, Child] = {}
        self.restarted = False
        self.hup = False
        self.stopping = False
        self.result: int | None = None

    def run(self) -> int:
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        for sig in HANDLED:
            signal.signal(sig, lambda *_: None)  # the wakeup fd carries the signal to the loop
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)  # one that came while preloading arrives now
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        gc.collect()
        gc.freeze()  # the preloaded libraries stay shared with the children (copy-on-write)
        self.current = self.spawn(first_version(self.root))
        while self.result is None:
            self.step()
        return self.result

    def spawn(self, version: str) -> Child:
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        inherited = [self.wake_r, self.wake_w, err_r, ready_r, *self.open_pipes()]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                become_child(err_w, inherited)
                code = run_child(self.app, self.spec, self.sock, version, ready_w)
            except BaseException:  # noqa: BLE001 - os._exit follows: the traceback is printed here or nowhere
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(err_w)
        os.close(ready_w)
        child = Child(pid, version, err_r, ready_r)
        for fd in (err_r, ready_r):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, child)
        note("child started", pid=pid, code=version)
        return child

    def open_pipes(self) -> list[int]:
        children = [c for c in (self.current, self.pending, *self.retiring.values()) if c is not None]
        return [fd for c in children for fd in (c.stderr, c.ready) if fd is not None]

    def step(self) -> None:
        timeout = 1.0
        if self.pending is not None:
            timeout = max(0.0, min(timeout, self.pending_since + READY_SECONDS - time.monotonic()))
        for key, _ in self.selector.select(timeout):
            if key.fd == self.wake_r:
                self.take_signals()
            else:
                self.read_child(key.data, key.fd)
        self.reap()
        if self.pending is not None and time.monotonic() - self.pending_since >= READY_SECONDS:
            self.swap_failed(f"not up within {READY_SECONDS:g}s")
        if self.hup and self.pending is None and not self.stopping and self.result is None:
            self.hup = False
            self.start_swap()

    def take_signals(self) -> None:
        try:
            data = os.read(self.wake_r, 512)
        except BlockingIOError:
            return
        for number in data:
            if number == signal.SIGHUP:
                self.hup = True
            elif number in (signal.SIGTERM, signal.SIGINT):
                self.stop(signal.Signals(number))

    def stop(self, sig: signal.Signals) -> None:
        note(f"received {sig.name}: passed to the serving child")
        self.stopping = True
        if self.pending is not None:
            self.swap_failed("the supervisor is stopping")
        if self.current is not None:
            os.kill(self.current.pid, sig)

    def read_child(self, child: Child, fd: int) -> None:
        if fd not in (child.stderr, child.ready):  # closed earlier in this round (the child is gone)
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if fd == child.stderr:
            if data:
                child.take_stderr(data)
                return
        elif data.startswith(b"ready"):
            self.child_ready(child)
        self.selector.unregister(fd)
        os.close(fd)
        if fd == child.ready:
            child.ready = None
        else:
            child.stderr = None

    def child_ready(self, child: Child) -> None:
        child.is_ready = True
        if child is self.pending:
            self.swap_done(child)
        elif child is self.current:
            self.restarted = False  # a later death may be restarted again
            note("child serving", pid=child.pid, code=child.version)

    def start_swap(self) -> None:
        generation_file = devsync.dev_dir(self.root) / "generation"
        try:
            generation = devsync.check_generation(generation_file.read_text().strip())
        except (OSError, devsync.SyncRefused) as exc:
            note(f"SIGHUP without a usable generation ({exc}): ignored")
            return
        self.pending = self.spawn(generation)
        self.pending_since = time.monotonic()

    def swap_done(self, child: Child) -> None:
        old, self.current, self.pending = self.current, child, None
        if old is not None:
            self.retiring[old.pid] = old
            os.kill(old.pid, signal.SIGUSR1)
        seconds = round(time.monotonic() - self.pending_since, 3)
        devsync.discard_backup(self.root, child.version)
        serving_file(self.root).write_text(child.version)
        self.write_result(child.version, ok=True, seconds=seconds, error="")
        note("new code serving", pid=child.pid, code=child.version, seconds=seconds)

    def swap_failed(self, why: str) -> None:
        child, self.pending = self.pending, None
        assert child is not None
        if not child.gone:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
            self.finish(child)
        restored = devsync.restore(self.root, child.version)
        devsync.discard_backup(self.root, child.version)
        error = f"the new code's process {why}; the previous code keeps serving"
        if restored:
            error += f"; restored {', '.join(restored)}"
        if lines := child.last_lines():
            error += f"\n{lines}"
        self.write_result(child.version, ok=False, seconds=round(time.monotonic() - self.pending_since, 3),
                          error=error)
        note("sync rolled back", code=child.version, error=error)

    def finish(self, child: Child) -> None:
        """A child is gone (reaped): read what it left on stderr, forget its pipes."""
        child.gone = True
        for fd in (child.stderr, child.ready):
            if fd is None:
                continue
            try:
                while data := os.read(fd, 65536):
                    if fd == child.stderr:
                        child.take_stderr(data)
            except BlockingIOError:
                pass
            self.selector.unregister(fd)
            os.close(fd)
        child.stderr, child.ready = None, None

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.child_exited(pid, status)

    def child_exited(self, pid: int, status: int) -> None:
        if pid in self.retiring:
            self.finish(self.retiring.pop(pid))
        elif self.pending is not None and pid == self.pending.pid:
            self.finish(self.pending)
            self.swap_failed(f"exited with code {exit_code(status)} before it answered")
        elif self.current is not None and pid == self.current.pid:
            child = self.current
            self.finish(child)
            self.current_exited(child, exit_code(status))

    def current_exited(self, child: Child, code: int) -> None:
        if self.stopping:
            note("child stopped", pid=child.pid, exit_code=code)
            self.result = code
        elif self.restarted:
            note("child died again after a restart: giving up", pid=child.pid, exit_code=code,
                 stderr=child.last_lines())
            self.result = 1
        else:
            note("child died: starting it again", pid=child.pid, exit_code=code, stderr=child.last_lines())
            self.restarted = True
            self.current = self.spawn(child.version)

    def write_result(self, generation: str, *, ok: bool, seconds: float, error: str) -> None:
        path = devsync.result_path(self.root, generation)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps({"generation": generation, "ok": ok, "seconds": seconds, "error": error}))
        os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in APPS:
        print(f"usage: python -m todo_serving.devloop {'|'.join(APPS)}", file=sys.stderr)
        return 2
    app, spec = args[0], APPS[args[0]]
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)  # held, not lost (nor fatal), until the loop runs
    started = time.monotonic()
    missing = preload(modules_to_preload(app, spec, os.environ))
    sock = listen(os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", spec.port)))
    note("supervisor listening", app=app, port=sock.getsockname()[1],
         preload_seconds=round(time.monotonic() - started, 3), not_preloaded=missing)
    return Supervisor(app, spec, sock, devsync.ROOT).run()


if __name__ == "__main__":
    raise SystemExit(main())
