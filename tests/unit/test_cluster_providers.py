"""`inv cluster`'s provider logic: the exact minikube/kind command lines for each
situation, with a recording fake Runner, and the image delivery choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures import load
from todo_deploy.artifacts import ImageRef
from todo_deploy.config import Settings, load_settings
from todo_deploy.gates import Verdict
from todo_deploy.stages import cluster
from todo_deploy.tools.commands import CommandResult

PROFILE = "todo-chatbot"


@dataclass
class FakeRunner:
    """Answers commands from a script (argv prefix -> result) and records every argv."""

    script: dict[tuple[str, ...], CommandResult | list[CommandResult]] = field(default_factory=dict)
    binaries: set[str] = field(default_factory=lambda: {"minikube", "kind", "docker"})
    calls: list[list[str]] = field(default_factory=list)

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.binaries else None

    def run(self, argv: Sequence[str], *, timeout: float = 600, env=None, input_text=None):
        argv = list(argv)
        self.calls.append(argv)
        best: tuple[str, ...] | None = None
        for prefix in self.script:
            if tuple(argv[: len(prefix)]) == prefix and (best is None or len(prefix) > len(best)):
                best = prefix
        if best is None:
            return CommandResult(tuple(argv), 0, "", "")
        answer = self.script[best]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        return CommandResult(tuple(argv), answer.returncode, answer.stdout, answer.stderr)


def out(stdout: str = "", rc: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult((), rc, stdout, stderr)


# What minikube v1.38.1 and kind v0.32.0 really print (tests/fixtures/*/, sources cited there).
RUNNING = load("minikube/status_running")
STOPPED = load("minikube/status_stopped")
PAUSED = load("minikube/status_paused")
NONEXISTENT = load("minikube/status_nonexistent")
NOT_FOUND = load("minikube/status_profile_not_found")
MULTINODE = load("minikube/status_multinode")
FULL = load("minikube/status_insufficient_storage")
CORRUPT = load("minikube/status_corrupt_config")
PROFILES_DOCKER = load("minikube/profile_list_docker")
PROFILES_VIRTUALBOX = load("minikube/profile_list_virtualbox")
PROFILES_INVALID = load("minikube/profile_list_invalid")
START_DOCKER_DOWN = load("minikube/start_docker_not_running")


def settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


START = ["minikube", "start", "-p", PROFILE, "--driver=docker", "--cpus=2", "--memory=4096"]
STATUS = ["minikube", "status", "-p", PROFILE, "-o", "json"]
PROFILES = ["minikube", "profile", "list", "-o", "json"]
ADDON_SP = ["minikube", "addons", "enable", "storage-provisioner", "-p", PROFILE]


def logs() -> list[str]:
    return []


def test_fixtures_are_the_commands_the_stage_runs() -> None:
    assert list(RUNNING.argv) == STATUS and list(PROFILES_DOCKER.argv) == PROFILES
    assert list(START_DOCKER_DOWN.argv) == START
    assert list(load("kind/get_clusters_none").argv) == KIND_GET
    assert list(load("kind/inspect_node_exited").argv) == KIND_INSPECT


@pytest.mark.parametrize(("sample", "state", "host"), [
    (RUNNING, "running", "Running"), (STOPPED, "stopped", "Stopped"),
    (PAUSED, "paused", "Running"), (NONEXISTENT, "nonexistent", "Nonexistent"),
    (NOT_FOUND, "absent", ""), (MULTINODE, "running", "Running"),
    (FULL, "full", "InsufficientStorage"), (CORRUPT, "unknown", ""),
])
def test_minikube_status_samples_are_read(sample: CommandResult, state: str, host: str) -> None:
    status = cluster.parse_minikube_status(sample)
    assert (status.state, status.host, status.exit_code) == (state, host, sample.returncode)


def test_minikube_status_keeps_what_minikube_said() -> None:
    assert cluster.parse_minikube_status(NOT_FOUND).messages == (
        'Profile "todo-chatbot" not found. Run "minikube profile list" to view all profiles.',
        'To start a cluster, run: "minikube start -p todo-chatbot"',
    )
    assert "Error getting cluster config" in cluster.parse_minikube_status(CORRUPT).summary


def test_minikube_not_started_creates_the_profile_with_the_settings_flags() -> None:
    runner = FakeRunner({tuple(STATUS): NOT_FOUND})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS, START, ADDON_SP]
    assert check.verdict is Verdict.PASS and "created" in check.evidence


def test_minikube_start_uses_memory_in_mib_and_addons_from_settings() -> None:
    runner = FakeRunner({tuple(STATUS): NOT_FOUND})
    s = settings(minikube_memory="6g", minikube_cpus=4, minikube_driver="kvm2",
                 minikube_addons="metrics-server, ingress")
    cluster.ensure_minikube(s, runner, logs().append)
    assert runner.calls == [
        STATUS,
        ["minikube", "start", "-p", PROFILE, "--driver=kvm2", "--cpus=4", "--memory=6144"],
        ADDON_SP,
        ["minikube", "addons", "enable", "metrics-server", "-p", PROFILE],
        ["minikube", "addons", "enable", "ingress", "-p", PROFILE],
    ]


@pytest.mark.parametrize("status", [RUNNING, MULTINODE], ids=["one node", "two nodes"])
def test_minikube_running_is_left_alone(status: CommandResult) -> None:
    runner = FakeRunner({tuple(STATUS): status, tuple(PROFILES): PROFILES_DOCKER})
    said: list[str] = []
    check = cluster.ensure_minikube(settings(), runner, said.append)
    assert runner.calls == [STATUS, PROFILES, ADDON_SP]
    assert not any(c[:2] == ["minikube", "start"] for c in runner.calls)
    assert check.verdict is Verdict.PASS and "left alone" in check.evidence
    assert any("already running" in line for line in said)


def test_minikube_stopped_is_started_with_the_same_flags() -> None:
    runner = FakeRunner({tuple(STATUS): STOPPED, tuple(PROFILES): PROFILES_DOCKER})
    said: list[str] = []
    check = cluster.ensure_minikube(settings(), runner, said.append)
    assert runner.calls == [STATUS, PROFILES, START, ADDON_SP]
    assert check.verdict is Verdict.PASS and "restarted" in check.evidence
    assert any("Host=Stopped" in line for line in said)


def test_minikube_paused_is_unpaused_not_restarted() -> None:
    runner = FakeRunner({tuple(STATUS): PAUSED, tuple(PROFILES): PROFILES_DOCKER})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS, PROFILES, ["minikube", "unpause", "-p", PROFILE], ADDON_SP]
    assert check.verdict is Verdict.PASS and "unpaused" in check.evidence


def test_minikube_profile_whose_container_vanished_is_recreated() -> None:
    runner = FakeRunner({tuple(STATUS): NONEXISTENT, tuple(PROFILES): PROFILES_DOCKER})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS, PROFILES, START, ADDON_SP]
    assert check.verdict is Verdict.PASS


@pytest.mark.parametrize("status", [RUNNING, STOPPED], ids=["running", "stopped"])
def test_minikube_wrong_driver_fails_without_recreating(status: CommandResult) -> None:
    runner = FakeRunner({tuple(STATUS): status, tuple(PROFILES): PROFILES_VIRTUALBOX})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS, PROFILES]  # no start, no delete
    assert check.verdict is Verdict.FAIL
    assert check.evidence == (f"profile {PROFILE} exists with driver virtualbox, "
                              "MINIKUBE_DRIVER=docker")
    assert f"minikube delete -p {PROFILE}" in check.fix
    assert "MINIKUBE_DRIVER=virtualbox" in check.fix


def test_minikube_the_other_driver_is_fine_when_the_settings_name_it() -> None:
    runner = FakeRunner({tuple(STATUS): STOPPED, tuple(PROFILES): PROFILES_VIRTUALBOX})
    check = cluster.ensure_minikube(settings(minikube_driver="virtualbox"), runner, logs().append)
    assert check.verdict is Verdict.PASS
    assert runner.calls[2] == ["minikube", "start", "-p", PROFILE, "--driver=virtualbox",
                               "--cpus=2", "--memory=4096"]


def test_minikube_invalid_profile_says_delete_it() -> None:
    runner = FakeRunner({tuple(STATUS): CORRUPT, tuple(PROFILES): PROFILES_INVALID})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS, PROFILES]
    assert check.verdict is Verdict.FAIL
    assert check.evidence.startswith(f"profile {PROFILE} is invalid")
    assert "Error getting cluster config" in check.evidence
    assert check.fix.startswith(f"`minikube delete -p {PROFILE}`")


def test_minikube_full_disk_is_named() -> None:
    runner = FakeRunner({tuple(STATUS): FULL})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS]
    assert check.verdict is Verdict.FAIL and "/var is almost full" in check.evidence
    assert "docker system prune" in check.fix


def test_minikube_binary_missing_is_a_failed_check_with_install_hint() -> None:
    runner = FakeRunner(binaries=set())
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == []
    assert check.verdict is Verdict.FAIL
    assert check.evidence == "the minikube binary is not on PATH"
    assert check.fix.startswith(cluster.MINIKUBE_INSTALL)


def test_minikube_start_failure_names_minikubes_reason() -> None:
    runner = FakeRunner({tuple(STATUS): NOT_FOUND, tuple(START[:2]): START_DOCKER_DOWN})
    check = cluster.ensure_minikube(settings(), runner, logs().append)
    assert runner.calls == [STATUS, START]
    assert check.verdict is Verdict.FAIL
    assert check.evidence.startswith("`minikube start` failed (exit 63): X Exiting due to "
                                     "PROVIDER_DOCKER_NOT_RUNNING")
    assert "Is the docker daemon running?" in check.evidence


KIND_GET = ["kind", "get", "clusters"]
KIND_CREATE = ["kind", "create", "cluster", "--name", "todo-chatbot"]
KIND_INSPECT = ["docker", "inspect", "-f", "{{.State.Status}}", "todo-chatbot-control-plane"]


def test_kind_not_started_creates_the_cluster() -> None:
    runner = FakeRunner({tuple(KIND_GET): load("kind/get_clusters_none")})
    check = cluster.ensure_kind(settings(cluster_provider="kind"), runner, logs().append)
    assert runner.calls == [KIND_GET, KIND_CREATE]
    assert check.verdict is Verdict.PASS and "created" in check.evidence


def test_kind_other_clusters_only_still_creates_ours() -> None:
    runner = FakeRunner({tuple(KIND_GET): out("kind\nother\n")})
    cluster.ensure_kind(settings(cluster_provider="kind"), runner, logs().append)
    assert runner.calls == [KIND_GET, KIND_CREATE]


def test_kind_running_is_left_alone() -> None:
    runner = FakeRunner({tuple(KIND_GET): load("kind/get_clusters_two"),
                         tuple(KIND_INSPECT): out("running\n")})
    check = cluster.ensure_kind(settings(cluster_provider="kind"), runner, logs().append)
    assert runner.calls == [KIND_GET, KIND_INSPECT]
    assert check.verdict is Verdict.PASS and "left alone" in check.evidence


def test_kind_stopped_node_is_started_not_recreated() -> None:
    runner = FakeRunner({tuple(KIND_GET): load("kind/get_clusters_two"),
                         tuple(KIND_INSPECT): load("kind/inspect_node_exited")})
    check = cluster.ensure_kind(settings(cluster_provider="kind"), runner, logs().append)
    assert runner.calls == [KIND_GET, KIND_INSPECT, ["docker", "start", "todo-chatbot-control-plane"]]
    assert check.verdict is Verdict.PASS and "restarted" in check.evidence


def test_kind_node_under_another_provider_is_left_alone() -> None:
    runner = FakeRunner({tuple(KIND_GET): load("kind/get_clusters_two"),
                         tuple(KIND_INSPECT): load("kind/inspect_node_missing")})
    said: list[str] = []
    check = cluster.ensure_kind(settings(cluster_provider="kind"), runner, said.append)
    assert runner.calls == [KIND_GET, KIND_INSPECT]  # no `docker start` of nothing
    assert check.verdict is Verdict.PASS
    assert "No such object: todo-chatbot-control-plane" in check.evidence
    assert any("KIND_EXPERIMENTAL_PROVIDER" in line for line in said)


def test_kind_with_docker_down_says_why_in_one_line() -> None:
    runner = FakeRunner({tuple(KIND_GET): load("kind/get_clusters_docker_down")})
    check = cluster.ensure_kind(settings(cluster_provider="kind"), runner, logs().append)
    assert runner.calls == [KIND_GET]
    assert check.verdict is Verdict.FAIL
    assert "\n" not in check.evidence
    assert check.evidence.startswith("`kind get clusters` failed: ERROR: failed to list clusters")
    assert check.evidence.endswith("Command Output: Cannot connect to the Docker daemon at "
                                   "unix:///var/run/docker.sock. Is the docker daemon running?")
    assert "docker info" in check.fix


def test_kind_binary_missing_is_a_failed_check_with_install_hint() -> None:
    runner = FakeRunner(binaries={"docker"})
    check = cluster.ensure_kind(settings(cluster_provider="kind"), runner, logs().append)
    assert runner.calls == [] and check.verdict is Verdict.FAIL
    assert check.evidence == "the kind binary is not on PATH" and check.fix.startswith(cluster.KIND_INSTALL)


@pytest.mark.parametrize("provider", ["docker-desktop", "existing"])
def test_context_providers_run_nothing(provider: str) -> None:
    runner = FakeRunner()
    check = cluster.ensure_cluster(settings(cluster_provider=provider), runner, logs().append)
    assert runner.calls == [] and check.verdict is Verdict.PASS


# ---- image delivery -----------------------------------------------------------------

IMAGES = {
    "backend": ImageRef("backend", "todo-backend", "1a2b3c4d5e6f", "sha256:" + "a" * 64),
    "frontend": ImageRef("frontend", "todo-frontend", "9f8e7d6c5b4a", "sha256:" + "b" * 64),
}


def node(runtime: str = "docker://20.10.24", ip: str = "192.0.2.2", images: Sequence[str] = ()) -> dict:
    return {
        "metadata": {"name": "n1"},
        "status": {
            "nodeInfo": {"containerRuntimeVersion": runtime},
            "addresses": [{"type": "InternalIP", "address": ip}],
            "images": [{"names": [name]} for name in images],
        },
    }


def no_local(_: list[str]) -> dict[str, str]:
    return {}


def test_minikube_loads_only_missing_images() -> None:
    ls = ["minikube", "image", "ls", "-p", PROFILE]
    runner = FakeRunner({tuple(ls): out("docker.io/library/todo-frontend:9f8e7d6c5b4a\n"
                                        "registry.k8s.io/pause:3.9\n")})
    d = cluster.deliver_images(settings(), runner, IMAGES, [node()], logs().append, no_local)
    assert runner.calls == [ls, ["minikube", "image", "load", "todo-backend:1a2b3c4d5e6f", "-p", PROFILE]]
    assert d.method == "minikube image load" and d.loaded == ["todo-backend:1a2b3c4d5e6f"]
    assert d.check.verdict is Verdict.PASS and "docker-env" in d.check.evidence


def test_minikube_with_everything_present_loads_nothing() -> None:
    ls = ["minikube", "image", "ls", "-p", PROFILE]
    runner = FakeRunner({tuple(ls): out("docker.io/library/todo-frontend:9f8e7d6c5b4a\n"
                                        "docker.io/library/todo-backend:1a2b3c4d5e6f\n")})
    d = cluster.deliver_images(settings(), runner, IMAGES, [node()], logs().append, no_local)
    assert runner.calls == [ls] and d.loaded == []


def test_kind_loads_images_the_node_lacks() -> None:
    runner = FakeRunner()
    s = settings(cluster_provider="kind")
    nodes = [node(runtime="containerd://1.7", ip="172.18.0.2",
                  images=["docker.io/library/todo-backend:1a2b3c4d5e6f"])]
    d = cluster.deliver_images(s, runner, IMAGES, nodes, logs().append, no_local)
    assert runner.calls == [
        ["kind", "load", "docker-image", "todo-frontend:9f8e7d6c5b4a", "--name", "todo-chatbot"]]
    assert d.method == "kind load"


@pytest.mark.parametrize("provider", ["docker-desktop", "existing"])
def test_shared_daemon_listed_by_node_needs_no_load(provider: str) -> None:
    runner = FakeRunner()
    nodes = [node(images=["todo-backend:1a2b3c4d5e6f", "todo-frontend:9f8e7d6c5b4a"])]
    d = cluster.deliver_images(settings(cluster_provider=provider), runner, IMAGES, nodes,
                               logs().append, no_local, lambda ip: False)
    assert runner.calls == [] and d.method == "shared daemon"
    assert "nothing to load" in d.check.evidence


def test_existing_node_on_this_hosts_docker_is_shared_even_if_not_listed() -> None:
    local = {img.ref: img.image_id for img in IMAGES.values()}
    d = cluster.deliver_images(settings(cluster_provider="existing"), FakeRunner(), IMAGES,
                               [node()], logs().append, lambda refs: local, lambda ip: True)
    assert d.method == "shared daemon" and d.check.verdict is Verdict.PASS


def test_existing_remote_cluster_without_registry_fails_with_options() -> None:
    d = cluster.deliver_images(settings(cluster_provider="existing"), FakeRunner(), IMAGES,
                               [node(runtime="containerd://1.7", ip="10.0.0.5")],
                               logs().append, no_local, lambda ip: False)
    assert d.check.verdict is Verdict.FAIL
    assert "IMAGE_REGISTRY" in d.check.fix and "inv build --push" in d.check.fix


def test_existing_remote_cluster_with_registry_needs_pushed_refs() -> None:
    s = settings(cluster_provider="existing", image_registry="registry.local:5000")
    remote = [node(runtime="containerd://1.7", ip="10.0.0.5")]
    d = cluster.deliver_images(s, FakeRunner(), IMAGES, remote, logs().append, no_local, lambda ip: False)
    assert d.check.verdict is Verdict.FAIL and "inv build --push" in d.check.fix
    pushed = {k: ImageRef(v.component, f"registry.local:5000/{v.repository}", v.tag, v.image_id)
              for k, v in IMAGES.items()}
    d = cluster.deliver_images(s, FakeRunner(), pushed, remote, logs().append, no_local, lambda ip: False)
    assert d.method == "registry" and d.check.verdict is Verdict.PASS


def test_no_build_recorded_fails_delivery() -> None:
    d = cluster.deliver_images(settings(), FakeRunner(), {}, [node()], logs().append, no_local)
    assert d.check.verdict is Verdict.FAIL and "inv build" in d.check.fix


def test_app_requests_sum_replicas_times_container_requests() -> None:
    def dep(kind: str, name: str, replicas: int, cpu: str, mem: str) -> dict:
        return {"kind": kind, "metadata": {"name": name}, "spec": {"replicas": replicas, "template": {
            "spec": {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}}}

    objs = [dep("Deployment", "b", 2, "100m", "128Mi"), dep("Deployment", "f", 2, "50m", "64Mi"),
            dep("StatefulSet", "pg", 1, "0.1", "256Mi"), {"kind": "Service", "metadata": {"name": "s"}}]
    cpu, mem, parts = cluster.app_requests(objs)
    assert float(cpu) == pytest.approx(0.4) and mem == (2 * 128 + 2 * 64 + 256) * 2**20
    assert len(parts) == 3


def test_run_stops_at_missing_binary_without_touching_the_cluster(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, {"CLUSTER_PROVIDER": "minikube"})
    result = cluster.run(loaded, runner=FakeRunner(binaries=set()), log=logs().append)
    assert not result.passed
    assert [c.name for c in result.checks] == [f"minikube profile {PROFILE}"]
