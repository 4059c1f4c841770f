"""`inv prune` and KEEP_IMAGE_TAGS on data (issue 22, item 8); the Docker test is in
tests/integration/test_prune_docker.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from todo_deploy.artifacts import ImageRef, save_images
from todo_deploy.cli import task_names
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict, save, scopes_for
from todo_deploy.images import prune


def tag(repo: str, name: str, created: str, image_id: str = "") -> prune.Tag:
    return prune.Tag(repo, name, image_id or f"sha256:{name}{'0' * 52}", created, 1_000_000)


OLD, MID, NEW = (tag("todo-backend", f"{n}" * 12, f"2026-12-0{n}T00:00:00") for n in (1, 2, 3))


def test_the_newest_n_of_each_repository_stay_and_the_rest_go() -> None:
    front = tag("todo-frontend", "f" * 12, "2026-12-01T00:00:00")
    found = prune.plan([OLD, NEW, MID, front], keep=1, protected={})
    assert found.remove == [MID, OLD]  # newest first, the newest kept
    assert [(t, why) for t, why in found.keep] == [(NEW, "one of the newest 1"),
                                                  (front, "one of the newest 1")]


def test_a_tag_in_use_stays_by_reference_or_by_image_id() -> None:
    protected = {OLD.ref: "the last deploy", MID.image_id: "pod todo/backend-1 runs it"}
    found = prune.plan([OLD, MID, NEW], keep=0, protected=protected)
    assert found.remove == [NEW]
    assert {t.ref: why for t, why in found.keep} == {
        OLD.ref: "the last deploy", MID.ref: "pod todo/backend-1 runs it"}


class FakeImage:
    def __init__(self, image_id: str, tags: list[str], created: int) -> None:
        self.id, self.tags = image_id, tags
        self.attrs = {"Created": created, "Size": 5}


class FakeImages:
    def __init__(self, images: list[FakeImage]) -> None:
        self.images = images

    def list(self, name: str) -> list[FakeImage]:  # the engine's reference filter: repo match
        return [i for i in self.images if any(t.rpartition(":")[0] == name for t in i.tags)]


def test_only_content_tags_of_our_own_repositories_are_candidates() -> None:
    client: Any = type("Client", (), {})()
    client.images = FakeImages([
        FakeImage("sha256:a", ["todo-backend:abcdef012345", "todo-backend:latest",
                               "todo-backend:it-abcdef012345"], 1_765_000_000),
        FakeImage("sha256:b", ["someone/todo-backend:abcdef012345"], 1_765_000_000),
        FakeImage("sha256:c", ["todo-frontend:0123456789ab"], 1_765_000_001),
    ])
    found = prune.own_tags(client, ["todo-backend", "todo-frontend"])
    assert [t.ref for t in found] == ["todo-backend:abcdef012345", "todo-frontend:0123456789ab"]
    assert found[0].created == "2025-12-06T05:46:40+00:00"  # epoch seconds from a listing


def test_pods_protect_what_they_run_by_reference_and_by_image_id() -> None:
    pods = [{"metadata": {"namespace": "todo", "name": "backend-1"},
             "spec": {"containers": [{"image": "todo-backend:abcdef012345"}],
                      "initContainers": [{"image": "todo-backend:0123456789ab"}]},
             "status": {"containerStatuses": [{"imageID": "docker://sha256:feed"}]}}]
    assert prune.pod_images(pods) == {
        "todo-backend:abcdef012345": "pod todo/backend-1 runs it",
        "todo-backend:0123456789ab": "pod todo/backend-1 runs it",
        "sha256:feed": "pod todo/backend-1 runs it"}


def settings_in(root: Path, **env: str) -> LoadedSettings:
    return load_settings(root, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "pr-unit", **env})


def test_the_last_build_and_the_last_deploy_are_protected(tmp_path: Path) -> None:
    loaded = settings_in(tmp_path)
    save_images(loaded.state_dir, {"backend": ImageRef("backend", "todo-backend", "3" * 12,
                                                       "sha256:built")})
    scopes = scopes_for(loaded.settings)
    save(loaded.state_dir, GateResult("deploy", [Check("ok", Verdict.PASS)],
                                      scope=scopes["deploy"], basis="b",
                                      details={"images": {"backend": OLD.ref}}))
    assert prune.recorded_refs(loaded) == {
        "todo-backend:333333333333": "the last build", "sha256:built": "the last build",
        OLD.ref: "the last deploy"}


def built_gate(skipped: bool) -> GateResult:
    return GateResult("build", [Check("build backend", Verdict.PASS)],
                      details={"images": {"backend": {"ref": NEW.ref, "skipped": skipped}}})


def test_after_a_build_that_built_nothing_or_with_keep_0_the_engine_is_not_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine() -> Any:
        raise AssertionError("asked the engine")

    monkeypatch.setattr("todo_deploy.images.engine", no_engine)
    prune.after_build(settings_in(tmp_path), built_gate(skipped=True), print)
    prune.after_build(settings_in(tmp_path, KEEP_IMAGE_TAGS="0"), built_gate(False), print)


def test_a_failed_clean_up_is_one_line_and_never_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise OSError("engine went away")

    monkeypatch.setattr("todo_deploy.images.engine", broken)
    said: list[str] = []
    prune.after_build(settings_in(tmp_path), built_gate(skipped=False), said.append)
    assert said == ["prune: old image tags left in place (OSError: engine went away)"]


def test_keep_image_tags_defaults_to_3_and_inv_prune_exists(tmp_path: Path) -> None:
    assert settings_in(tmp_path).settings.keep_image_tags == 3
    assert "prune" in task_names()


def test_the_dry_run_says_what_it_would_remove_and_how_to_do_it() -> None:
    found = prune.plan([OLD, NEW], keep=1, protected={})
    lines = prune.describe(found, removed=False)
    assert lines[0] == f"would remove {OLD.ref} (111111111111, 2026-12-01T00:00:00)"
    assert lines[-1] == ("would remove 1 tag(s), up to 1 MB; kept 1; "
                         "`inv prune --yes` removes them")


def test_recording_a_build_that_built_cleans_up_beside_what_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pipeline.record starts the clean-up in a thread (the deploy is not kept waiting)."""
    import threading

    from todo_deploy.pipeline import record

    started, release, done = threading.Event(), threading.Event(), threading.Event()
    ran: list[tuple[str, bool]] = []

    def slow_after_build(loaded: LoadedSettings, result: GateResult, log: Any) -> None:
        started.set()
        release.wait(5)
        ran.append((threading.current_thread().name, threading.current_thread().daemon))
        done.set()

    monkeypatch.setattr(prune, "after_build", slow_after_build)
    record(settings_in(tmp_path), built_gate(skipped=False))  # returns while it still runs
    assert started.wait(5) and not ran
    release.set()
    assert done.wait(5)
    assert ran == [("prune-old-image-tags", False)]  # not a daemon: `inv build` waits for it
    record(settings_in(tmp_path), built_gate(skipped=True))
    assert len(ran) == 1  # nothing built: no clean-up
