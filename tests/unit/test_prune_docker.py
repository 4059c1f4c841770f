"""`inv prune` against the real Docker engine (issue 22, item 8).

Tiny images `FROM scratch` (nothing pulled, no shared image touched) under a
repository of this test's own (IMAGE_REGISTRY=prune-test-<random>), plus one tag
of a look-alike repository that is not ours: only our old, unused tags go.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from todo_deploy.artifacts import ImageRef, save_images
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.images import prune

ROOT = Path(__file__).resolve().parents[2]


def no_pods(settings: Any) -> tuple[list[dict[str, Any]], str]:
    return [], ""


@pytest.fixture
def engine(docker_engine: None) -> Iterator[tuple[Any, str, list[str]]]:
    import docker

    client = docker.from_env(timeout=60)
    registry = f"prune-test-{uuid.uuid4().hex[:8]}"
    made: list[str] = []  # every ref and container this test creates, removed at the end
    yield client, registry, made
    for ref in reversed(made):
        with contextlib.suppress(Exception):
            if ref.startswith("container:"):
                client.containers.get(ref.split(":", 1)[1]).remove(force=True)
            else:
                client.images.remove(ref, force=True, noprune=False)


def build(client: Any, ref: str, label: str, made: list[str]) -> str:
    dockerfile = f"FROM scratch\nLABEL prune-test={ref}-{label}\n".encode()  # never cached
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True, pull=False)
    made.append(ref)
    time.sleep(1.1)  # the engine's listing gives creation times in whole seconds
    return image.id


def settings_in(root: Path, registry: str) -> LoadedSettings:
    return load_settings(root, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "prune-test",
                                "IMAGE_REGISTRY": registry})


def test_prune_removes_only_our_old_unused_tags(
    engine: tuple[Any, str, list[str]], tmp_path: Path
) -> None:
    client, registry, made = engine
    repo = f"{registry}/todo-backend"
    tags = [uuid.uuid4().hex[:12] for _ in range(4)]
    ids = [build(client, f"{repo}:{t}", str(n), made) for n, t in enumerate(tags)]
    theirs = f"{registry}-theirs/todo-backend:{tags[0]}"  # same name, not our registry
    build(client, theirs, "theirs", made)
    in_use = client.containers.create(ids[1], command=["never-started"])
    made.append(f"container:{in_use.id}")
    loaded = settings_in(tmp_path, registry)
    save_images(loaded.state_dir, {"backend": ImageRef("backend", repo, tags[0], ids[0])})

    found = prune.make_plan(loaded, client, keep=1, pods=no_pods)
    assert [t.ref for t in found.remove] == [f"{repo}:{tags[2]}"]
    assert {t.tag: why.split(" ")[0] for t, why in found.keep} == {
        tags[3]: "one", tags[1]: "container", tags[0]: "the"}

    done = prune.remove(client, found)
    assert [t.ref for t in done.remove] == [f"{repo}:{tags[2]}"]
    left = {t for i in client.images.list(name=repo) for t in i.tags}
    assert left == {f"{repo}:{tags[n]}" for n in (0, 1, 3)}
    assert client.images.get(theirs).id  # someone else's look-alike is untouched


def test_inv_prune_is_a_dry_run_without_yes(
    engine: tuple[Any, str, list[str]], tmp_path: Path
) -> None:
    client, registry, made = engine
    repo = f"{registry}/todo-frontend"
    old, new = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    build(client, f"{repo}:{old}", "old", made)
    build(client, f"{repo}:{new}", "new", made)
    env = {**os.environ, "TODO_DEPLOY_ROOT": str(tmp_path), "IMAGE_REGISTRY": registry,
           "CLUSTER_PROVIDER": "existing", "NAMESPACE": "prune-test", "KEEP_IMAGE_TAGS": "1",
           "COLUMNS": "200"}

    def inv(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "prune", *args],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    printed = inv()
    assert f"would remove {repo}:{old}" in printed and "`inv prune --yes` removes them" in printed
    assert client.images.get(f"{repo}:{old}")  # still there
    printed = inv("--yes")
    assert f"removed {repo}:{old}" in printed
    assert {t for i in client.images.list(name=repo) for t in i.tags} == {f"{repo}:{new}"}
