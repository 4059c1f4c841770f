"""Where the app is: the access choice on minikube (never the blocking
`minikube service --url`), and when a kept URL is reused."""

from __future__ import annotations

import os

import pytest

from tests.unit.test_cluster_providers import FakeRunner, out
from todo_deploy import access
from todo_deploy.access import app_url
from todo_deploy.config import Settings

LB_PENDING = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 31000}]},
              "status": {"loadBalancer": {}}}


def minikube(driver: str = "docker") -> Settings:
    return Settings(cluster_provider="minikube", minikube_driver=driver)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("platform", "driver", "blocks"),
    [("darwin", "docker", True), ("win32", "docker", True), ("win32", "podman", True),
     ("linux", "docker", False), ("darwin", "hyperkit", False), ("darwin", "qemu2", False)],
)
def test_minikube_service_url_blocks_only_with_a_container_driver_off_linux(
    platform: str, driver: str, blocks: bool
) -> None:
    assert access.minikube_service_blocks(minikube(driver), platform) is blocks


def test_on_macos_docker_driver_minikube_service_is_never_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(access.sys, "platform", "darwin")
    runner = FakeRunner({("minikube", "service"): out("http://127.0.0.1:55555\n")})
    plan = access.choose_access(minikube(), LB_PENDING, [], runner, reachable=lambda _: True)
    assert plan.kind == access.PORT_FORWARD
    assert not any(call[:2] == ["minikube", "service"] for call in runner.calls)
    assert "minikube issues 7644, 14039" in plan.detail
    assert "minikube tunnel -p todo-chatbot" in plan.detail


def test_on_linux_minikube_service_url_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access.sys, "platform", "linux")
    runner = FakeRunner({("minikube", "service"): out("http://192.168.49.2:31000\n")})
    plan = access.choose_access(minikube(), LB_PENDING, [], runner, reachable=lambda _: True)
    assert (plan.kind, plan.url) == (access.MINIKUBE, "http://192.168.49.2:31000")


def kept(kind: str = "nodeport", url: str = "http://192.0.2.2:30080", pid: int = 0):
    return app_url.AppUrl(url, kind, "", "ctx/ns/svc", pid)


def test_a_kept_url_is_reused_only_when_it_still_answers_as_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_url, "answers", lambda url, timeout=5.0: True)
    assert app_url.reusable(kept(), port=0, forward=False)
    assert not app_url.reusable(kept(), port=0, forward=True)  # a forward was asked for
    forward = kept("port-forward", "http://127.0.0.1:8080", pid=os.getpid())
    assert app_url.reusable(forward, port=0, forward=True)
    assert app_url.reusable(forward, port=8080, forward=False)
    assert not app_url.reusable(forward, port=8081, forward=False)
    dead = kept("port-forward", "http://127.0.0.1:8080", pid=2**22 + 12345)
    assert not app_url.reusable(dead, port=0, forward=False)
    monkeypatch.setattr(app_url, "answers", lambda url, timeout=5.0: False)
    assert not app_url.reusable(kept(), port=0, forward=False)


def test_state_round_trip_and_stop_forgets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app_url.save(tmp_path, kept())
    assert app_url.load(tmp_path) == kept()
    assert app_url.stop(tmp_path) == kept()
    assert app_url.load(tmp_path) is None
    assert app_url.stop(tmp_path) is None


def test_a_port_that_refuses_until_its_rules_arrive_counts_as_reachable() -> None:
    """Right after a rollout a NodePort refuses until kube-proxy has synced: a port that
    starts listening late is reachable; one that never listens is not, within the
    timeout; the CI run had picked a port-forward for a NodePort that was a moment away.
    The waits are scaled down (listening 0.2 s late, a retry every 0.05 s) to keep the
    fast tier fast; the defaults (3 s, every 0.25 s) are the same loop."""
    import socket
    import threading
    import time

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # free: connections are refused until it listens

    listener = socket.socket()
    late, every = 0.2, 0.05

    def listen_late() -> None:
        time.sleep(late)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    thread = threading.Thread(target=listen_late)
    thread.start()
    try:
        started = time.monotonic()
        assert access.tcp_reachable(f"http://127.0.0.1:{port}", timeout=3.0, retry_every=every)
        assert late - 0.05 < time.monotonic() - started < 2.5
    finally:
        thread.join()
        listener.close()
    started = time.monotonic()
    assert not access.tcp_reachable(f"http://127.0.0.1:{port}", timeout=0.3, retry_every=every)
    assert 0.3 - every <= time.monotonic() - started < 0.9
