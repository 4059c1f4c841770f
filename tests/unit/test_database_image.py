"""The bundled PostgreSQL image reaches the node the way each provider needs:
pulled on the host then loaded (minikube, kind), pulled on the shared daemon, or
left to the kubelet."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.test_cluster_providers import FakeRunner, node, out
from todo_deploy.config import Settings
from todo_deploy.gates import Verdict
from todo_deploy.stages import cluster

IMAGE = "postgres:15"


def settings(provider: str) -> Settings:
    return Settings(cluster_provider=provider, postgres_image=IMAGE)  # type: ignore[arg-type]


def recording_pull(ok: bool = True) -> tuple[list[str], Callable]:
    pulled: list[str] = []

    def pull(ref: str, log: Callable[[str], None]) -> tuple[bool, str]:
        pulled.append(ref)
        return (True, f"pulled {ref} in 1.0 s") if ok else (False, f"cannot pull {ref}: nope")

    return pulled, pull


def test_minikube_pulls_on_the_host_then_loads_into_the_node() -> None:
    runner = FakeRunner({("minikube", "image", "ls"): out("docker.io/library/todo-backend:abc\n")})
    pulled, pull = recording_pull()
    check = cluster.deliver_database_image(
        settings("minikube"), runner, "minikube image load", [node()], [].append, pull
    )
    assert check.verdict is Verdict.PASS, check
    assert pulled == [IMAGE]
    assert ["minikube", "image", "load", IMAGE, "-p", "todo-chatbot"] in runner.calls


def test_minikube_skips_an_image_the_node_has() -> None:
    runner = FakeRunner({("minikube", "image", "ls"): out("docker.io/library/postgres:15\n")})
    pulled, pull = recording_pull()
    check = cluster.deliver_database_image(
        settings("minikube"), runner, "minikube image load", [node()], [].append, pull
    )
    assert check.verdict is Verdict.PASS and "already" in check.evidence
    assert pulled == [] and not any(c[:3] == ["minikube", "image", "load"] for c in runner.calls)


def test_kind_loads_after_pulling_and_reports_a_failed_load() -> None:
    runner = FakeRunner({("kind", "load"): out(rc=1, stderr="ERROR: no nodes found for cluster")})
    pulled, pull = recording_pull()
    check = cluster.deliver_database_image(
        settings("kind"), runner, "kind load", [node()], [].append, pull
    )
    assert pulled == [IMAGE]
    assert ["kind", "load", "docker-image", IMAGE, "--name", "todo-chatbot"] in runner.calls
    assert check.verdict is Verdict.FAIL and "no nodes found" in check.evidence
    assert "POSTGRES_IMAGE=postgres:15" in check.fix


@pytest.mark.parametrize("method", ["minikube image load", "kind load", "shared daemon"])
def test_a_failed_pull_fails_the_check_naming_the_image(method: str) -> None:
    runner = FakeRunner({("minikube", "image", "ls"): out("")})
    _, pull = recording_pull(ok=False)
    provider = {"minikube image load": "minikube", "kind load": "kind"}.get(method, "existing")
    check = cluster.deliver_database_image(settings(provider), runner, method, [], [].append, pull)
    assert check.verdict is Verdict.FAIL
    assert "cannot pull postgres:15" in check.evidence
    assert not any("load" in c for c in runner.calls)


def test_shared_daemon_pulls_here_and_a_registry_cluster_leaves_it_to_the_kubelet() -> None:
    pulled, pull = recording_pull()
    shared = cluster.deliver_database_image(
        settings("existing"), FakeRunner(), "shared daemon", [], [].append, pull
    )
    assert shared.verdict is Verdict.PASS and pulled == [IMAGE]
    remote = cluster.deliver_database_image(
        settings("existing"), FakeRunner(), "registry", [], [].append, pull
    )
    assert remote.verdict is Verdict.PASS and "kubelet pulls postgres:15" in remote.evidence
    assert pulled == [IMAGE]
