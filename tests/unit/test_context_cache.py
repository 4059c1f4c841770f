"""A no-change `inv build` decides from the file system and one request on the engine's
socket: the context's signature, when it is trusted, and the image lookup."""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from todo_deploy.images import context_cache


def _context(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "pkg").mkdir(parents=True)
    (context / "pkg" / "a.py").write_text("a = 1\n")
    (context / "requirements.txt").write_text("x==1\n")
    old = time.time() - 60
    for path in (context / "pkg" / "a.py", context / "requirements.txt", context / "pkg"):
        os.utime(path, (old, old))
    return context


def test_the_signature_follows_every_path_the_dockerfile_and_the_args(tmp_path):
    context = _context(tmp_path)
    first = context_cache.signature(context, "FROM x", {"A": "1"})
    assert first is not None
    assert context_cache.signature(context, "FROM x", {"A": "1"}) == first
    assert context_cache.signature(context, "FROM y", {"A": "1"}) != first
    assert context_cache.signature(context, "FROM x", {"A": "2"}) != first
    # Same size, another second: a different signature.
    path = context / "pkg" / "a.py"
    path.write_text("a = 2\n")
    old = time.time() - 30
    os.utime(path, (old, old))
    assert context_cache.signature(context, "FROM x", {"A": "1"}) not in (None, first)


def test_with_sources_only_those_folders_and_the_contexts_own_files_count(tmp_path):
    context = _context(tmp_path)
    old = time.time() - 60
    for folder in ("other", "common"):
        (context / folder).mkdir()
        (context / folder / "b.py").write_text("b = 1\n")
        os.utime(context / folder / "b.py", (old, old))
        os.utime(context / folder, (old, old))
    first = context_cache.signature(context, "FROM x", {}, ("pkg", "common"))
    assert first is not None
    (context / "other" / "b.py").write_text("b = 22\n")  # fresh, but not a source
    assert context_cache.signature(context, "FROM x", {}, ("pkg", "common")) == first
    (context / "common" / "b.py").write_text("b = 22\n")
    os.utime(context / "common" / "b.py", (old + 1, old + 1))
    assert context_cache.signature(context, "FROM x", {}, ("pkg", "common")) not in (None, first)
    second = context_cache.signature(context, "FROM x", {}, ("pkg", "common"))
    (context / ".dockerignore").write_text("*\n")
    os.utime(context / ".dockerignore", (old, old))
    assert context_cache.signature(context, "FROM x", {}, ("pkg", "common")) not in (None, second)


def test_a_fresh_file_is_not_trusted(tmp_path):
    context = _context(tmp_path)
    (context / "pkg" / "new.py").write_text("b = 1\n")  # modified just now
    assert context_cache.signature(context, "FROM x", {}) is None
    context_cache.save(tmp_path, "backend", None, {"tag": "t"})
    assert not (tmp_path / context_cache.FILE).exists()


def test_a_plan_is_kept_per_component_and_signature(tmp_path):
    context_cache.save(tmp_path, "backend", "s1", {"tag": "t1", "migrations": "m"})
    context_cache.save(tmp_path, "frontend", "s2", {"tag": "t2"})
    assert context_cache.load(tmp_path, "backend", "s1") == {"signature": "s1", "tag": "t1",
                                                             "migrations": "m"}
    assert context_cache.load(tmp_path, "backend", "s2") is None
    assert context_cache.load(tmp_path, "backend", None) is None
    assert context_cache.load(tmp_path, "frontend", "s2")["tag"] == "t2"


@pytest.mark.parametrize(("host", "path"), [
    ("", context_cache.DEFAULT_SOCKET),
    ("unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock"),
    ("tcp://127.0.0.1:2375", None),
    ("ssh://me@box", None),
])
def test_only_a_unix_socket_is_spoken_to_directly(host, path):
    assert context_cache.socket_path({"DOCKER_HOST": host} if host else {}) == path


def test_inspect_image_over_the_socket(tmp_path):
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

        def do_GET(self):
            seen.append(self.path)
            if "todo-backend%3Aabc" in self.path:
                body, status = json.dumps({"Id": "sha256:1", "Size": 5}).encode(), 200
            else:
                body, status = b'{"message": "No such image"}', 404
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def get_request(self):  # type: ignore[no-untyped-def]
            request, _ = super().get_request()
            return request, ("local", 0)  # http.server wants a (host, port) client address

    path = str(tmp_path / "docker.sock")
    server = Server(path, Handler)
    # shutdown() waits for the loop to poll: every 0.5 s by default
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        assert context_cache.inspect_image("todo-backend:abc", path) == {"Id": "sha256:1", "Size": 5}
        assert context_cache.inspect_image("todo-backend:zzz", path) is None
        assert seen[0] == "/images/todo-backend%3Aabc/json"
    finally:
        server.shutdown()
    with pytest.raises(OSError):
        context_cache.inspect_image("x:y", str(tmp_path / "absent.sock"))
