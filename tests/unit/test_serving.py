"""'Serving' means the frontend answers with the new code (issue 22 item 4): todo_deploy.access.serving
and `inv watch`'s use of it, with a fake cluster and a fake frontend."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from todo_deploy.access import serving
from todo_deploy.artifacts import ImageRef
from todo_deploy.timing import Timeline
from todo_deploy.watch import Watcher

NEW = "todo-backend:new"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def answers(*pods: str) -> serving.Fetch:
    """A frontend answering /api/meta from these backend pods in turn (the last one after)."""
    seen = list(pods)

    def fetch(_: str) -> dict[str, Any] | None:
        pod = seen.pop(0) if len(seen) > 1 else seen[0]
        return None if pod == "-" else {"version": "x", "pod": pod}

    return fetch


def test_served_only_after_three_answers_in_a_row_from_new_backend_pods() -> None:
    clock = Clock()
    new = serving.NewCode(backend_pods=frozenset({"b-new"}), frontend_pods=None)
    # An old pod's answer in the middle (a kept-alive connection) restarts the count.
    fetch = answers("b-old", "b-new", "b-new", "b-old", "-", "b-new", "b-new", "b-new")
    calls = []

    def counted(path: str) -> dict[str, Any] | None:
        calls.append(path)
        return fetch(path)

    assert serving.wait_until_served(new, counted, 10, clock=clock, sleep=clock.sleep) is None
    assert len(calls) == 8  # before: "serving" as soon as the rollout ended, no answer asked for


def test_an_old_backend_answering_until_the_timeout_is_named() -> None:
    clock = Clock()
    new = serving.NewCode(backend_pods=frozenset({"b-new"}), frontend_pods=None)
    why = serving.wait_until_served(new, answers("b-old"), 2, clock=clock, sleep=clock.sleep)
    assert why == "the frontend's /api/meta answered from backend pod b-old"


def test_a_new_frontend_counts_once_its_service_sends_new_connections_to_new_pods_only() -> None:
    clock = Clock()
    new = serving.NewCode(backend_pods=None, frontend_pods=frozenset({"f-new"}))
    switched = iter([False, False, True])
    fetch = answers("b-any")
    calls = []

    def counted(path: str) -> dict[str, Any] | None:
        calls.append(path)
        return fetch(path)

    assert serving.wait_until_served(new, counted, 10, frontend_ready=lambda: next(switched),
                                     clock=clock, sleep=clock.sleep) is None
    assert len(calls) == 5  # two answers before the switch do not count
    why = serving.wait_until_served(new, fetch, 1, frontend_ready=lambda: False, clock=clock, sleep=clock.sleep)
    assert why == "the frontend Service still sends new connections to old frontend pods"


class FakeKube:
    def __init__(self, pods: list[dict[str, Any]], endpoints: dict[str, Any] | None = None) -> None:
        self.pods = pods
        self.endpoints = endpoints

    def list(self, api_version: str, kind: str, namespace: str = "") -> list[dict[str, Any]]:
        assert (api_version, kind) == ("v1", "Pod")
        return self.pods

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        assert (api_version, kind) == ("v1", "Endpoints")
        return self.endpoints


def pod(name: str, image: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": image}]}}


def test_the_new_pods_are_those_running_the_new_image_and_not_being_deleted() -> None:
    kube = FakeKube([pod("b-new", NEW), pod("b-old", "todo-backend:old"), pod("b-gone", NEW, deleting=True)])
    assert serving.pods_running(kube, "ns", NEW) == {"b-new"}
    kube.endpoints = {"subsets": [{"addresses": [{"targetRef": {"name": "f-1"}}],
                                   "notReadyAddresses": [{"targetRef": {"name": "f-2"}}]}]}
    assert serving.endpoint_pods(kube, "ns", "svc") == {"f-1", "f-2"}


def test_watch_reports_serving_only_once_the_frontend_answers_from_a_new_backend_pod(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube([pod("b-new", NEW), pod("b-old", "todo-backend:old")])
    asked: list[str] = []

    def fetch_meta(url: str) -> serving.Fetch:
        asked.append(url)
        return answers("b-old", "b-old", "b-new")

    monkeypatch.setattr(serving, "fetch_meta", fetch_meta)
    monkeypatch.setattr(serving, "POLL_S", 0.001)  # the fakes answer at once: no need to space the asks
    loaded = SimpleNamespace(settings=SimpleNamespace(namespace="ns", release_name="todo"))
    watcher = Watcher(loaded, print, frontend_url=lambda: contextlib.nullcontext("http://frontend.test"))  # type: ignore[arg-type]
    watcher._kube = kube
    image = ImageRef(component="backend", repository="todo-backend", tag="new", image_id="sha256:1")
    assert image.ref == NEW
    assert watcher._wait_served({"backend": image}, Timeline(print)) is None
    assert asked == ["http://frontend.test"]  # through the frontend, not the backend Service
    monkeypatch.setattr(serving, "fetch_meta", lambda url: answers("b-old"))
    monkeypatch.setattr(serving, "TIMEOUT_S", 0.1)
    assert watcher._wait_served({"backend": image}, Timeline(print)) == (
        "the frontend's /api/meta answered from backend pod b-old")


def test_bench_pipeline_times_serving_through_the_frontend_service(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from bench import pipeline

    asked: list[tuple[str, ...]] = []

    def kubectl_json(*args: str) -> dict[str, Any]:
        asked.append(args)
        return {"spec": {"clusterIP": "10.0.0.9", "ports": [{"port": 80}]}}

    versions = iter(["old", "new", "old", "new", "new", "new"])
    urls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, json={"version": next(versions)})

    monkeypatch.setattr(pipeline, "kubectl_json", kubectl_json)
    monkeypatch.setattr(pipeline.time, "sleep", lambda _s: None)
    pipeline.serving("ns", "rel", "new", timeout=5, transport=httpx.MockTransport(answer))
    # Before: the backend Service ("rel-backend", port 8000), which the frontend's pool bypasses.
    assert asked == [("-n", "ns", "get", "service", "rel-frontend")]
    assert urls == ["http://10.0.0.9/api/meta"] * 6  # three in a row counted, an old answer restarts


def test_inv_up_says_serving_once_the_frontend_answers_with_the_new_images(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from invoke.exceptions import Exit

    from todo_deploy.pipeline import conductor

    old = ImageRef(component="backend", repository="todo-backend", tag="old", image_id="sha256:0")
    new = ImageRef(component="backend", repository="todo-backend", tag="new", image_id="sha256:1")
    front = ImageRef(component="frontend", repository="todo-frontend", tag="f", image_id="sha256:2")
    asked: list[dict[str, ImageRef]] = []
    verdict: list[str | None] = [None]

    def new_code_served(settings: Any, kube_: Any, rebuilt: dict[str, ImageRef]) -> str | None:
        asked.append(rebuilt)
        return verdict[0]

    monkeypatch.setattr(conductor, "load_images", lambda _d: {"backend": new, "frontend": front})
    monkeypatch.setattr(conductor, "Kube", lambda _ctx: object())
    monkeypatch.setattr(serving, "new_code_served", new_code_served)
    loaded = SimpleNamespace(state_dir="unused", settings=SimpleNamespace(context_name=""))
    conductor.new_code_serving(loaded, {"backend": new, "frontend": front})
    assert asked == []  # nothing new: nothing to wait for
    conductor.new_code_serving(loaded, {"backend": old, "frontend": front})
    assert asked == [{"backend": new}]
    assert "deploy: backend new code serving through the frontend" in capsys.readouterr().out
    verdict[0] = "the frontend's /api/meta answered from backend pod b-old"
    with pytest.raises(Exit) as stopped:
        conductor.new_code_serving(loaded, {"backend": old, "frontend": front})
    assert stopped.value.message == ("the rollout finished but the frontend did not answer with the new code "
                                     "within 60 s: the frontend's /api/meta answered from backend pod b-old")


def test_the_watch_bench_reads_the_seconds_watch_printed_even_when_the_console_wrapped_them() -> None:
    from bench.watch_serving import phase_seconds, said_seconds

    lines = ["deploy [  0.21s +18.77s] wait rollout",
             "watch [ 21.09s + 1.19s] new code through the frontend",
             "watch: backend todo-backend:fc0bae23b68d serving through the frontend 22.3 s ",
             "after the change was seen (rollout done at 21.1 s)"]
    assert said_seconds(lines) == 22.3
    assert phase_seconds(lines, "wait rollout") == 18.77
    assert phase_seconds(lines, "new code through the frontend") == 1.19
    assert said_seconds(lines[:3]) == 22.3  # kept up to the wrapped line's first half
    assert said_seconds(["watch: FAILED: the build failed"]) is None


# --- inv watch keeps one way to the frontend for the session (issue 22: 4) ------------------------


class Opened:
    """serving.user_url's stand-in: counts the ways opened and closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    @contextlib.contextmanager
    def __call__(self, settings: Any, kube: Any) -> Any:
        self.opened += 1
        try:
            yield f"http://forward-{self.opened}.test"
        finally:
            self.closed += 1


def kept_frontend_watcher(monkeypatch: pytest.MonkeyPatch, opened: Opened) -> tuple[Watcher, list[str]]:
    asked: list[str] = []

    def fetch_meta(url: str) -> serving.Fetch:
        asked.append(url)
        return answers("b-new")

    monkeypatch.setattr(serving, "fetch_meta", fetch_meta)
    monkeypatch.setattr(serving, "POLL_S", 0.001)  # the fakes answer at once: no need to space the asks
    monkeypatch.setattr(serving, "user_url", opened)
    loaded = SimpleNamespace(settings=SimpleNamespace(namespace="ns", release_name="todo"))
    watcher = Watcher(loaded, print)  # type: ignore[arg-type]
    watcher._kube = FakeKube([pod("b-new", NEW)])
    return watcher, asked


def test_watch_opens_the_frontend_once_for_the_session_not_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = Opened()
    watcher, asked = kept_frontend_watcher(monkeypatch, opened)
    image = ImageRef(component="backend", repository="todo-backend", tag="new", image_id="sha256:1")
    for _ in range(3):
        assert watcher._wait_served({"backend": image}, Timeline(print)) is None
    # Before: a port-forward opened and closed for every change (3 opened, 3 closed).
    assert (opened.opened, opened.closed) == (1, 0)
    assert asked == ["http://forward-1.test"] * 3
    watcher.drop_frontend()  # after a failed check or a chart change: a new way next time
    assert watcher._wait_served({"backend": image}, Timeline(print)) is None
    assert asked[-1] == "http://forward-2.test"
    watcher.close()  # when inv watch stops
    assert (opened.opened, opened.closed) == (2, 2)


def test_watch_names_the_timeout_and_drops_the_way_when_the_new_code_is_not_served(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from todo_deploy import watch as watch_module
    from todo_deploy.gates import GateResult

    opened = Opened()
    watcher, _ = kept_frontend_watcher(monkeypatch, opened)
    image = ImageRef(component="backend", repository="todo-backend", tag="new", image_id="sha256:1")
    monkeypatch.setattr(watch_module, "load_images", lambda _d: {})
    monkeypatch.setattr(watcher, "_build", lambda names, previous, timeline: (GateResult("build"), {"backend": image}))
    monkeypatch.setattr(watcher, "_deploy", lambda timeline: GateResult("deploy"))
    monkeypatch.setattr(serving, "fetch_meta", lambda url: answers("b-old"))
    monkeypatch.setattr(serving, "TIMEOUT_S", 0.2)
    watcher.loaded.state_dir = "unused"
    outcome = watcher.handle({"backend"})
    # Before: AttributeError ('float' object has no attribute 'TIMEOUT_S': the seconds shadowed the module).
    assert not outcome.ok
    assert outcome.message.endswith("did not answer with the new code within 0.2 s: "
                                    "the frontend's /api/meta answered from backend pod b-old")
    assert (opened.opened, opened.closed) == (1, 1)


def test_fetch_meta_asks_on_a_new_connection_each_time_with_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    peers: list[int] = []

    class Meta(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless the client closes

        def do_GET(self) -> None:
            peers.append(self.client_address[1])
            body = json.dumps({"version": "x", "pod": "b-new"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    made: list[Any] = []
    real_client = httpx.Client

    def client(*args: Any, **kwargs: Any) -> httpx.Client:
        made.append(kwargs)
        return real_client(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", client)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Meta)
    # shutdown() waits for the loop to poll: every 0.5 s by default
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        fetch = serving.fetch_meta(f"http://127.0.0.1:{server.server_address[1]}")
        assert [fetch("/api/meta") for _ in range(3)] == [{"version": "x", "pod": "b-new"}] * 3
    finally:
        server.shutdown()
    assert len(set(peers)) == 3  # a new connection (a new visitor) each time
    assert len(made) == 1  # before: a client made (~0.1 s) for every answer
