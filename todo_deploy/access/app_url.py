"""Where the app is: a URL that answers from this machine, kept in .state/app-url.json.

A direct way when the cluster offers one (NodePort, a LoadBalancer's ingress,
`minikube service --url`); otherwise a managed port-forward: a background
process of its own, started by `inv up` / `inv open` and stopped by
`inv open --stop` and `inv down`. It picks a Ready pod for every connection, so
it keeps working while pods are replaced, and survives the command that started it.

`python -m todo_deploy.access.app_url --port N` is that background process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from todo_deploy.access import (
    INGRESS,
    PORT_FORWARD,
    AccessPlan,
    PortForwarder,
    frontend_service_name,
    plan_access,
)
from todo_deploy.chart import ingress
from todo_deploy.config import load_settings
from todo_deploy.kube import Kube
from todo_deploy.tools import processes

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings
    from todo_deploy.tools.commands import Runner

STATE_FILE = "app-url.json"
LOG_FILE = "port-forward.log"
FORWARD_PORTS = range(8080, 8100)  # the first free one is used, unless --port says
START_TIMEOUT_S = 20.0
FORWARD_MODULE = "todo_deploy.access.app_url"  # the background process runs this module


@dataclass(frozen=True)
class AppUrl:
    url: str
    kind: str  # ingress | nodeport | loadbalancer | minikube-service | port-forward
    detail: str  # how it was chosen (and, for a port-forward, why no direct way)
    target: str  # context/namespace/service it reaches
    pid: int = 0  # the port-forward process


def target_of(loaded: LoadedSettings) -> str:
    settings = loaded.settings
    return "/".join((settings.context_name or "(current)", settings.namespace,
                     frontend_service_name(settings)))


def load(state_dir: Path) -> AppUrl | None:
    try:
        return AppUrl(**json.loads((state_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save(state_dir: Path, app: AppUrl) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(app), indent=2))


def answers(url: str, timeout: float = 5.0) -> bool:
    """GET `url` (redirects followed) answers with a 2xx/3xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def process_alive(pid: int) -> bool:
    return processes.alive(pid)


def _free_port(candidates: range) -> int:
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free local port in {candidates.start}-{candidates.stop - 1}; "
                       "pass --port")


def stop(state_dir: Path) -> AppUrl | None:
    """Stop the managed port-forward (if any) and forget the URL; returns what was kept."""
    previous = load(state_dir)
    if (previous and previous.kind == PORT_FORWARD and process_alive(previous.pid)
            and processes.runs(previous.pid, FORWARD_MODULE)):
        processes.terminate(previous.pid, timeout=5)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()
    return previous


def start_forward(loaded: LoadedSettings, port: int, detail: str) -> AppUrl:
    """Start the background port-forward on 127.0.0.1:`port` and wait until it answers."""
    state_dir = loaded.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TODO_DEPLOY_ROOT": str(loaded.root)}
    with open(state_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", FORWARD_MODULE, "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            **processes.detached(),  # outlives `inv up` and its terminal's Ctrl-C
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if answers(url, timeout=3):
            app = AppUrl(url, PORT_FORWARD, detail, target_of(loaded), process.pid)
            save(state_dir, app)
            return app
        time.sleep(0.3)
    if process.poll() is None:
        process.terminate()
    tail = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
    raise RuntimeError(f"the port-forward on {url} did not answer within {START_TIMEOUT_S:g} s: "
                       + (" | ".join(tail) or "no output"))


def reusable(kept: AppUrl, port: int, forward: bool) -> bool:
    if kept.kind == INGRESS:  # its host may resolve only in a browser's setup: ask again
        return False
    if forward and kept.kind != PORT_FORWARD:
        return False
    if port and not kept.url.endswith(f":{port}"):
        return False
    if kept.kind == PORT_FORWARD and not process_alive(kept.pid):
        return False
    return answers(kept.url)


def ensure(
    loaded: LoadedSettings,
    kube: Kube | None = None,
    runner: Runner | None = None,
    port: int = 0,
    forward: bool = False,
) -> AppUrl:
    """A URL of the app that answers now: the kept one, a direct one, or a new port-forward."""
    state_dir = loaded.state_dir
    kept = load(state_dir)
    if kept and kept.target == target_of(loaded) and reusable(kept, port, forward):
        return kept
    stop(state_dir)
    kube = kube or Kube(loaded.settings.context_name)
    plan = plan_access(loaded.settings, kube, runner, mode=PORT_FORWARD if forward else "auto")
    if plan.kind != PORT_FORWARD:
        app = direct_url(loaded, plan)
        save(state_dir, app)
        return app
    return start_forward(loaded, port or _free_port(FORWARD_PORTS), plan.detail)


def direct_url(loaded: LoadedSettings, plan: AccessPlan) -> AppUrl:
    """The URL of a direct way in: through the Ingress, the one users open
    (https://INGRESS_HOST/), with where its host must point; else the plan's."""
    if plan.kind != INGRESS:
        return AppUrl(plan.url, plan.kind, plan.detail, target_of(loaded))


    settings = loaded.settings
    address = urlsplit(plan.url).hostname or ""
    detail = (f"{plan.detail}; where {settings.ingress_host} does not resolve to {address}, "
              f"add `{address} {settings.ingress_host}` to the hosts file")
    if ingress.parse_tls(settings.ingress_tls).mode == "self-signed":
        detail += "; the certificate is self-signed: the browser asks once"
    return AppUrl(ingress.public_url(settings), INGRESS, detail, target_of(loaded))


def serve_forwarding(port: int) -> int:
    """The background process: forward 127.0.0.1:`port` to the frontend until SIGTERM."""
    loaded = load_settings()
    settings = loaded.settings
    done = threading.Event()
    for signum in processes.stop_signals():
        signal.signal(signum, lambda *_: done.set())
    forwarder = PortForwarder(settings, Kube(settings.context_name).api,
                              frontend_service_name(settings), port=port)
    url = forwarder.start()
    print(f"{time.strftime('%H:%M:%S')} forwarding {url} -> Service "
          f"{frontend_service_name(settings)} in {settings.namespace}", flush=True)
    seen = 0
    while not done.wait(1.0):
        for error in forwarder.errors[seen:]:
            print(f"{time.strftime('%H:%M:%S')} {error}", flush=True)
        seen = len(forwarder.errors)
    forwarder.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    raise SystemExit(serve_forwarding(parser.parse_args().port))
