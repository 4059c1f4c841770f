"""The pieces that let a deploy skip what did not change, and `inv watch` find what did:
the applied-object record, the migration key, the rollout rule of `kubectl rollout
status`, the phase timeline, and the mapping of saved files to components."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from todo_deploy import images
from todo_deploy.artifacts import ImageRef, load_images, save_images
from todo_deploy.chart import values as chart_values
from todo_deploy.components import BUILT
from todo_deploy.config import load_settings
from todo_deploy.kube import applied, deployment_state
from todo_deploy.timing import Timeline
from todo_deploy.watch import CHART, Layout, affected

CM = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "1"}}


# ---- the record of what was applied --------------------------------------------------------


def test_an_object_is_skipped_only_with_the_same_manifest_and_resource_version(tmp_path):
    entry = applied.Entry(applied.manifest_hash(CM), "41", "v1")
    applied.save(tmp_path, "ctx/ns/rel", {applied.key_of(CM): entry})
    recorded = applied.load(tmp_path, "ctx/ns/rel")
    assert applied.key_of(CM) == "ConfigMap/ns/c"
    assert applied.unchanged(CM, recorded, {"ConfigMap/ns/c": "41"})
    # Rendered differently now: applied.
    changed = {**CM, "data": {"a": "2"}}
    assert not applied.unchanged(changed, recorded, {"ConfigMap/ns/c": "41"})
    # Written in the cluster since (kubectl edit, scale, another manager): applied.
    assert not applied.unchanged(CM, recorded, {"ConfigMap/ns/c": "42"})
    # Gone from the cluster: applied.
    assert not applied.unchanged(CM, recorded, {})


def test_the_record_belongs_to_one_target_and_can_be_forgotten(tmp_path):
    applied.save(tmp_path, "ctx/ns/rel", {"ConfigMap/ns/c": applied.Entry("h", "1", "v1")})
    assert applied.load(tmp_path, "ctx/other/rel") == {}
    assert applied.load(tmp_path, "ctx/ns/rel") != {}
    applied.forget(tmp_path)
    assert applied.load(tmp_path, "ctx/ns/rel") == {}
    applied.forget(tmp_path)  # twice is fine
    (tmp_path / applied.FILE).write_text("{not json")
    assert applied.load(tmp_path, "ctx/ns/rel") == {}


def test_key_order_does_not_change_the_hash():
    reordered = {"data": {"a": "1"}, "metadata": {"namespace": "ns", "name": "c"},
                 "kind": "ConfigMap", "apiVersion": "v1"}
    assert applied.manifest_hash(reordered) == applied.manifest_hash(CM)


# ---- the migration Job's key --------------------------------------------------------------


def _settings(tmp_path: Path, **env: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return load_settings(tmp_path, environ={"NAMESPACE": "ns", "RELEASE_NAME": "rel", **env}).settings


def test_migration_key_follows_the_migrations_and_the_database_not_the_image(tmp_path):
    settings = _settings(tmp_path)
    a = ImageRef("backend", "todo-backend", "aaaaaaaaaaaa", migrations="m1")
    b = dataclasses.replace(a, tag="bbbbbbbbbbbb")  # new code, same migrations
    key = chart_values.migration_key(settings, a)
    assert key == chart_values.migration_key(settings, b) and len(key) == 12
    assert chart_values.migration_key(settings, dataclasses.replace(a, migrations="m2")) != key
    other_db = _settings(tmp_path / "x", DATABASE_MODE="external",
                         DATABASE_URL="postgresql://u:p@db.example:5432/todo")
    assert chart_values.migration_key(other_db, a) != key
    # An image recorded before the build hashed its migrations: the tag names the Job.
    assert chart_values.migration_key(settings, dataclasses.replace(a, migrations="")) == ""


def test_the_rendered_job_is_named_after_the_key(tmp_path):
    from todo_deploy.chart import manifests

    settings = _settings(tmp_path)
    frontend = ImageRef("frontend", "todo-frontend", "cccccccccccc")
    names = set()
    for tag in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        backend = ImageRef("backend", "todo-backend", tag, migrations="m1")
        names.add(manifests.migration_job(
            manifests.render_manifests(settings, {"backend": backend, "frontend": frontend})))
    assert len(names) == 1 and names.pop().startswith("rel-migrate-")
    untagged = ImageRef("backend", "todo-backend", "aaaaaaaaaaaa")
    assert manifests.migration_job(manifests.render_manifests(
        settings, {"backend": untagged, "frontend": frontend})) == "rel-migrate-aaaaaaaaaaaa"


def test_migrations_hash_changes_with_a_migration_only(tmp_path):
    context = tmp_path / "ctx"
    (context / "todo_api" / "migrations").mkdir(parents=True)
    (context / "todo_api" / "migrations" / "0001.py").write_text("up = 1\n")
    (context / "todo_api" / "server.py").write_text("x = 1\n")
    files = ["todo_api", "todo_api/migrations", "todo_api/migrations/0001.py", "todo_api/server.py"]
    first = images.migrations_hash(context, files, "todo_api/migrations")
    (context / "todo_api" / "server.py").write_text("x = 2\n")
    assert images.migrations_hash(context, files, "todo_api/migrations") == first
    (context / "todo_api" / "migrations" / "0001.py").write_text("up = 2\n")
    assert images.migrations_hash(context, files, "todo_api/migrations") != first
    assert images.migrations_hash(context, files, "") == ""


def test_images_json_from_before_the_migrations_field_still_loads(tmp_path):
    save_images(tmp_path, {"backend": ImageRef("backend", "r", "t", "sha256:x", 1, 1, "m")})
    text = (tmp_path / "images.json").read_text().replace(', "migrations": "m"', "")
    text = text.replace('"migrations": "m"', '"future_field": 1')
    (tmp_path / "images.json").write_text(text)
    assert load_images(tmp_path)["backend"].migrations == ""


# ---- rolled out when `kubectl rollout status` says so ------------------------------------------


def _dep(**status: int) -> dict:
    return {"metadata": {"name": "d", "namespace": "n", "generation": 2},
            "spec": {"replicas": 2}, "status": {"observedGeneration": 2, **status}}


@pytest.mark.parametrize(("status", "done"), [
    ({"updatedReplicas": 1, "replicas": 3, "availableReplicas": 2}, False),  # new pods coming
    ({"updatedReplicas": 2, "replicas": 4, "availableReplicas": 2}, False),  # old ones active
    ({"updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}, False),  # not available yet
    # Old pods that are terminating are not in status.replicas: done without waiting for them.
    ({"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2, "readyReplicas": 2}, True),
])
def test_rollout_done_exactly_when_kubectl_says_so(status, done):
    assert deployment_state(None, _dep(**status)).done is done  # type: ignore[arg-type]


def test_a_spec_the_controller_has_not_seen_is_not_done():
    dep = _dep(updatedReplicas=2, replicas=2, availableReplicas=2)
    dep["status"]["observedGeneration"] = 1
    assert not deployment_state(None, dep).done  # type: ignore[arg-type]


# ---- phases ---------------------------------------------------------------------------------


def test_timeline_prints_and_keeps_each_phase_with_offset_and_duration():
    lines: list[str] = []
    timeline = Timeline(lines.append, prefix="deploy ")
    with timeline.phase("render"):
        pass
    timeline.add("wait rollout", 1.5, 2.25)
    details = timeline.as_details()
    assert [p["phase"] for p in details["phases"]] == ["render", "wait rollout"]
    assert details["phases"][1] == {"phase": "wait rollout", "start_s": 1.5, "duration_s": 2.25}
    assert lines[1] == "deploy [  1.50s + 2.25s] wait rollout"
    assert details["process_start_to_stage_s"] >= 0
    assert timeline.summary().startswith("wait rollout 2.25s")


# ---- what a saved file belongs to -------------------------------------------------------------


def _layout(root: Path) -> Layout:
    """The real components' layout, under `root`."""
    return Layout(
        sources={n: tuple(root / d for d in c.source_dirs) for n, c in BUILT.items()},
        dockerfiles={n: root / c.dockerfile for n, c in BUILT.items()},
        chart=root / "helm/todo-chatbot",
        shared=(root / "app/.dockerignore",),
    )


def test_saved_files_map_to_their_component(tmp_path):
    layout = _layout(tmp_path)
    assert affected([tmp_path / "app/backend/todo_api/routes/health.py"], layout) == {"backend"}
    assert affected([tmp_path / "app/frontend/todo_web/pages.py"], layout) == {"frontend"}
    assert affected([tmp_path / "app/backend/requirements.txt",
                     tmp_path / "docker/frontend.Dockerfile"], layout) == {"backend", "frontend"}
    assert affected([tmp_path / "helm/todo-chatbot/values.yaml"], layout) == {CHART}
    ignored = [tmp_path / "app/backend/todo_api/__pycache__/x.cpython-311.pyc",
               tmp_path / "app/frontend/.index.html.swp", tmp_path / "README.md",
               tmp_path / "app/notes.txt"]
    assert affected(ignored, layout) == set()


def test_a_save_in_the_shared_package_or_dockerignore_affects_both_images(tmp_path):
    layout = _layout(tmp_path)
    both = {"backend", "frontend"}
    assert affected([tmp_path / "app/common/todo_serving/limits.py"], layout) == both
    assert affected([tmp_path / "app/.dockerignore"], layout) == both


def test_watched_folders_cover_every_source_once(tmp_path):
    for folder in ("app/backend", "app/frontend", "app/common", "docker", "helm/todo-chatbot"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "app/.dockerignore").write_text("*\n")
    assert _layout(tmp_path).paths() == [tmp_path / "app", tmp_path / "docker",
                                         tmp_path / "helm/todo-chatbot"]


# ---- quantities without importing the kubernetes SDK ------------------------------------------


def test_quantity_is_the_sdks_parser_without_the_sdk_import():
    import subprocess
    import sys

    values = ["500m", "1Gi", "1e3", "2", "0.5", "128Mi", "1.5k"]
    code = ("import sys; from todo_deploy.kube import quantity; "
            f"print([str(quantity(v)) for v in {values!r}], 'kubernetes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    from kubernetes.utils import parse_quantity

    assert done.stdout.strip() == f"{[str(parse_quantity(v)) for v in values]!r} False"


# ---- the render cache ---------------------------------------------------------------------


def test_a_render_is_reused_only_for_the_same_chart_and_values(tmp_path, monkeypatch):
    import shutil

    from todo_deploy.chart import manifests

    chart = tmp_path / "chart"
    shutil.copytree(chart_values.CHART_DIR, chart)
    monkeypatch.setattr(chart_values, "CHART_DIR", chart)
    monkeypatch.setattr(manifests.chart_values, "CHART_DIR", chart)
    settings = _settings(tmp_path / "root")
    images_ = {"backend": ImageRef("backend", "todo-backend", "aaaaaaaaaaaa"),
               "frontend": ImageRef("frontend", "todo-frontend", "bbbbbbbbbbbb")}
    state = tmp_path / "state"

    def render_objects(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    calls: list[int] = []
    real = manifests.render_objects
    monkeypatch.setattr(manifests, "render_objects", render_objects)
    first = manifests.render_manifests(settings, images_, cache_dir=state)
    assert manifests.render_manifests(settings, images_, cache_dir=state) == first and len(calls) == 1
    # Other values: rendered again.
    other = {**images_, "frontend": ImageRef("frontend", "todo-frontend", "cccccccccccc")}
    assert manifests.render_manifests(settings, other, cache_dir=state) != first and len(calls) == 2
    # The last few renders are kept (the cluster and deploy stages render with other values).
    assert manifests.render_manifests(settings, images_, cache_dir=state) == first
    assert len(calls) == 2
    # A template edited: rendered again, and the edit shows.
    template = chart / "templates" / "configmap.yaml"
    template.write_text(template.read_text().replace("\ndata:", "\ndata:\n  EDITED: \"yes\"", 1))
    edited = manifests.render_manifests(settings, other, cache_dir=state)
    assert len(calls) == 3
    assert next(o for o in edited if o["kind"] == "ConfigMap")["data"]["EDITED"] == "yes"
    # Another cluster (its version and APIs): rendered again, for it.
    from todo_deploy.kube import Capabilities

    old_cluster = Capabilities("v1.20.2", ("v1", "apps/v1", "policy/v1beta1", "autoscaling/v2beta2"))
    overlay = tmp_path / "scaled.yaml"
    overlay.write_text("backend:\n  autoscaling:\n    enabled: true\n    maxReplicas: 2\n")
    scaled = _settings(tmp_path / "root", VALUES_FILES=str(overlay))
    new = manifests.render_manifests(scaled, other, cache_dir=state)
    old = manifests.render_manifests(scaled, other, cache_dir=state, capabilities=old_cluster)
    assert len(calls) == 5
    hpa = {o["apiVersion"] for o in new + old if o["kind"] == "HorizontalPodAutoscaler"}
    assert hpa == {"autoscaling/v2", "autoscaling/v2beta2"}


# ---- the prefetch of `inv up` ------------------------------------------------------------------


def _loaded(tmp_path: Path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return load_settings(tmp_path, environ={"NAMESPACE": "ns", "RELEASE_NAME": "rel",
                                            "FRONTEND_SERVICE_TYPE": "NodePort"})


def test_the_prefetch_renders_what_the_deploy_will_render_for_the_planned_image(tmp_path, monkeypatch):
    from todo_deploy import kube
    from todo_deploy.chart import manifests
    from todo_deploy.pipeline import prefetch
    from todo_deploy.pipeline.prefetch import Prefetch

    loaded = _loaded(tmp_path / "root")
    recorded = {"backend": ImageRef("backend", "todo-backend", "aaaaaaaaaaaa", "sha256:" + "a" * 64,
                                    migrations="m1"),
                "frontend": ImageRef("frontend", "todo-frontend", "bbbbbbbbbbbb", "sha256:" + "b" * 64)}
    save_images(loaded.state_dir, recorded)
    target = kube.Capabilities("v1.20.2", ("v1", "apps/v1", "autoscaling/v2beta2", "policy/v1beta1"))

    class Cluster:
        def capabilities(self) -> kube.Capabilities:
            return target

    monkeypatch.setattr(prefetch, "Kube", lambda context="": Cluster())
    monkeypatch.setattr(prefetch, "live_node_port", lambda k, s: 30123)

    ahead = Prefetch(loaded)
    ahead.planned_image(ImageRef("backend", "todo-backend", "cccccccccccc", migrations="m1"))
    ahead.wait()
    assert ahead.errors == [] and ahead.thread is None

    # What the build then records (an image ID, sizes) renders the same: the deploy reads it.
    built = {**recorded, "backend": ImageRef("backend", "todo-backend", "cccccccccccc",
                                             "sha256:" + "c" * 64, 1, 1, migrations="m1")}

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(manifests, "render_objects", no_render)
    objects = manifests.render_manifests(loaded.settings, built, 30123, cache_dir=loaded.state_dir,
                                         capabilities=target)
    backend = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "rel-backend")
    assert backend["spec"]["template"]["spec"]["containers"][0]["image"] == "todo-backend:cccccccccccc"
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "rel-frontend")
    assert service["spec"]["ports"][0]["nodePort"] == 30123


def test_a_failing_prefetch_is_kept_quiet_for_the_stages_to_meet(tmp_path, monkeypatch):
    from todo_deploy import kube
    from todo_deploy.pipeline import prefetch
    from todo_deploy.pipeline.prefetch import Prefetch

    loaded = _loaded(tmp_path / "root")
    save_images(loaded.state_dir, {"frontend": ImageRef("frontend", "todo-frontend", "b" * 12)})
    monkeypatch.setattr(prefetch, "Kube", lambda context="": object())

    def unreachable(k, s):
        raise kube.KubeError(0, "connection refused")

    monkeypatch.setattr(prefetch, "live_node_port", unreachable)
    ahead = Prefetch(loaded)
    ahead.planned_image(ImageRef("backend", "todo-backend", "c" * 12))
    ahead.wait()
    assert [str(e) for e in ahead.errors] and "connection refused" in str(ahead.errors[0])
    assert not (loaded.state_dir / "rendered.json").exists()
    ahead.wait()  # again: nothing to wait for
