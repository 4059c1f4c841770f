"""Drill: after a full build + deploy (and a full `inv up`) with recognisable generated secrets, none of them
appears in the repository, the images' layers, any ConfigMap (or other non-Secret object),
the pods' logs, the stage state files or the output of any task.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.common import REPO
from bench.stack import kubectl, kubectl_json
from tests.shared_release import FullRun, SharedRelease

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(600)]


def _needles(values: dict[str, str]) -> dict[str, bytes]:
    return {k: v.encode() for k, v in values.items() if len(v) >= 16}


def _hits(data: bytes, needles: dict[str, bytes], where: str) -> list[str]:
    return [f"{key} in {where}" for key, value in needles.items() if value in data]


def test_generated_secrets_are_recognisable(shared_release: SharedRelease) -> None:
    settings = shared_release.stack.loaded().settings
    assert settings.auth_secret.get_secret_value() == shared_release.secret_values["AUTH_SECRET"]
    assert settings.session_secret.get_secret_value() == shared_release.secret_values["SESSION_SECRET"]
    assert len(_needles(shared_release.secret_values)) == 3


def test_secrets_reach_the_cluster_only_as_secrets(shared_release: SharedRelease) -> None:
    """They ARE in the Secrets (so the scan below could find them) and nowhere else."""
    stack, needles = shared_release.stack, _needles(shared_release.secret_values)
    raw_secrets = kubectl("-n", stack.namespace, "get", "secrets", "-o", "json").stdout
    import base64
    import json

    decoded = b"".join(base64.b64decode(v) for item in json.loads(raw_secrets)["items"]
                       for v in (item.get("data") or {}).values())
    assert all(value in decoded for value in needles.values()), "the scan would find nothing"

    kinds = ("configmaps,deployments,statefulsets,jobs,pods,services,serviceaccounts,"
             "replicasets,endpoints,events,networkpolicies,persistentvolumeclaims")
    objects = kubectl("-n", stack.namespace, "get", kinds, "-o", "yaml").stdout.encode()
    assert not _hits(objects, needles, "cluster objects")
    configmaps = kubectl("-n", stack.namespace, "get", "configmaps", "-o", "yaml").stdout.encode()
    assert b"kind: ConfigMap" in configmaps and not _hits(configmaps, needles, "ConfigMaps")


def test_no_secret_in_pod_logs(shared_release: SharedRelease) -> None:
    """Every pod of the release that is not on its way out (the drills before this one roll
    and delete pods: `kubectl logs -l` fails on the whole selector when one of them is gone)."""
    stack, needles = shared_release.stack, _needles(shared_release.secret_values)
    pods = kubectl_json("-n", stack.namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={stack.release}")
    names = [p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    read = [kubectl("-n", stack.namespace, "logs", name, "--all-containers", "--prefix", "--tail=-1",
                    timeout=120, check=False) for name in names]
    # A pod may still begin to go between the listing and its read: that one only is let off.
    unread = [r.stderr for r in read if r.returncode != 0 and "is terminated" not in r.stderr]
    assert not unread, unread
    logs = b"".join(r.stdout.encode() for r in read if r.returncode == 0)
    assert sum(r.returncode == 0 for r in read) >= 3, names  # the backend, the frontend, the database
    assert logs, "no pod logs at all: the scan would prove nothing"
    assert not _hits(logs, needles, "pod logs")


def test_no_secret_in_task_output_or_state(shared_release: SharedRelease) -> None:
    stack, needles = shared_release.stack, _needles(shared_release.secret_values)
    printed = "\n".join(shared_release.output).encode()
    assert printed, "the stages printed nothing"
    assert not _hits(printed, needles, "stage output")
    for path in (stack.root / ".state").glob("*.json"):
        assert not _hits(path.read_bytes(), needles, str(path.name))
    # The CLI: `inv config` / `inv status` against the same settings root.
    env = {**os.environ, **stack.environ, "TODO_DEPLOY_ROOT": str(stack.root)}
    for task in ("config", "status"):
        run = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), task],
                             env=env, capture_output=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        assert not _hits(run.stdout + run.stderr, needles, f"inv {task}")


def test_no_secret_in_the_repository(shared_release: SharedRelease) -> None:
    needles = _needles(shared_release.secret_values)
    args = [a for v in needles.values() for a in ("-e", v.decode())]
    grep = subprocess.run(["git", "-C", str(REPO), "grep", "-l", "-F", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert grep.returncode == 1, f"tracked files contain a secret: {grep.stdout}"
    untracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--others",
                                "--exclude-standard"], capture_output=True, timeout=60,
                               check=True).stdout.decode().split("\0")
    hits = []
    for rel in filter(None, untracked):
        path = REPO / rel
        if path.is_file() and path.stat().st_size < 50_000_000:
            hits += _hits(path.read_bytes(), needles, rel)
    assert not hits


def _scan_image(client, ref: str, needles: dict[str, bytes]) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """`docker save` the image and look into every file of every layer (and the config)."""
    layers, hits = 0, []
    stream = io.BytesIO(b"".join(client.images.get(ref).save(named=True)))
    with tarfile.open(fileobj=stream) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("layer.tar") or member.name.startswith("blobs/"):
                try:
                    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                        layers += 1
                        for entry in layer.getmembers():
                            if entry.isfile():
                                content = layer.extractfile(entry).read()  # type: ignore[union-attr]
                                hits += _hits(content, needles, f"{ref}:{member.name}:{entry.name}")
                    continue
                except tarfile.TarError:
                    pass
            hits += _hits(data, needles, f"{ref}:{member.name}")
    return layers, hits


def test_no_secret_in_any_image_layer(shared_release: SharedRelease) -> None:
    import docker

    client = docker.from_env(timeout=600)
    needles = _needles(shared_release.secret_values)
    from todo_deploy.artifacts import load_images

    images = load_images(Path(shared_release.stack.root) / ".state")
    assert set(images) == {"backend", "frontend"}
    for image in images.values():
        layers, hits = _scan_image(client, image.ref, needles)
        assert layers >= 2, f"{image.ref}: found only {layers} layers to scan"
        assert not hits, hits


def test_no_secret_in_a_full_inv_up(shared_release: SharedRelease, full_inv_up: FullRun) -> None:
    """`inv up --full` end to end on the drill's deployment: all it prints and writes is clean."""
    stack, needles = shared_release.stack, _needles(shared_release.secret_values)
    printed = full_inv_up.printed
    assert full_inv_up.returncode == 0, printed.decode(errors="replace")[-3000:]
    assert b"All gates passed" in printed
    assert not _hits(printed, needles, "inv up output")
    written = [*(stack.root / ".state").glob("*.json"), *(stack.root / "docs").glob("*")]
    assert any(p.name == "deployment-report.md" for p in written)
    for path in written:
        assert not _hits(path.read_bytes(), needles, str(path.relative_to(stack.root)))
