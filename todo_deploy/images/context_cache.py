"""`inv build` with nothing changed, without the docker SDK.

The build decides "nothing to do" from the content tag of each context, which needs
the files the .dockerignore lets through (the docker SDK's matcher) and then one
lookup in the engine. Importing the SDK (docker, requests, urllib3...) costs
0.1-0.3 s, more than the rest of a no-change build. So the last plan of each context
is kept in `.state/contexts.json` under a signature of the context as the file system
describes it: every path under the folder (ignored ones too) with its mode, size and
modification time (ns), the Dockerfile's text and the build arguments. When the
signature is the same, so is the plan; the image is then looked up with one request
over the engine's Unix socket.

As git does for its index, a signature is not kept while a file's modification time
is within the last few seconds (a write in the same clock tick could otherwise go
unseen). When DOCKER_HOST names anything but a Unix socket, the SDK is used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

FILE = "contexts.json"
RACY_S = 3.0  # newer files than this are not trusted to show a change by mtime
DEFAULT_SOCKET = "/var/run/docker.sock"


def signature(
    context: Path, dockerfile_text: str, args: dict[str, str], sources: Iterable[str] = ()
) -> str | None:
    """Of every path under `context` (mode, size, mtime): None while one is too fresh.
    With `sources`, of the context's own files (its .dockerignore) and of those of its
    folders only: what the image is built from."""
    wanted = set(sources)
    digest = hashlib.sha256()
    newest = 0
    stack = [context]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                is_dir = entry.is_dir(follow_symlinks=False)
                if wanted and is_dir and folder == context and entry.name not in wanted:
                    continue
                info = entry.stat(follow_symlinks=False)
                newest = max(newest, info.st_mtime_ns)
                rel = os.path.relpath(entry.path, context)
                digest.update(f"{rel}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
                if is_dir:
                    stack.append(Path(entry.path))
    if time.time_ns() - newest < RACY_S * 1e9:
        return None
    digest.update(dockerfile_text.encode() + b"\0" + json.dumps(args, sort_keys=True).encode())
    return digest.hexdigest()


def load(state_dir: Path, component: str, sig: str | None) -> dict[str, Any] | None:
    """The plan kept for `component` under this signature, or None."""
    if sig is None:
        return None
    try:
        entry = json.loads((state_dir / FILE).read_text()).get(component)
    except (OSError, ValueError, AttributeError):
        return None
    return entry if isinstance(entry, dict) and entry.get("signature") == sig else None


def save(state_dir: Path, component: str, sig: str | None, plan: dict[str, Any]) -> None:
    if sig is None:
        return
    path = state_dir / FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[component] = {"signature": sig, **plan}
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def socket_path(environ: dict[str, str] | None = None) -> str | None:
    """The engine's Unix socket, or None when DOCKER_HOST names another transport."""
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return None


def inspect_image(ref: str, path: str, timeout: float = 10) -> dict[str, Any] | None:
    """`docker image inspect ref` over the Unix socket: its JSON, or None if absent.
    OSError when the engine does not answer."""
    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)

    conn = Connection("localhost", timeout=timeout)
    try:
        conn.request("GET", f"/images/{quote(ref, safe='')}/json")
        response = conn.getresponse()
        body = response.read()
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(f"the Docker engine at {path} did not answer: {exc}") from None
    finally:
        conn.close()
    if response.status == 404:
        return None
    if response.status != 200:
        raise OSError(f"the Docker engine answered {response.status} for {ref}")
    return json.loads(body)
