"""`inv deploy` applies only what changed, on the real test cluster: a no-change deploy
writes nothing, a changed object is applied and the others are not, an object edited by
hand in the cluster is noticed and put back, and the migration Job runs once per set of
migrations (not once per image)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from todo_deploy.access import live_node_port
from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.kube import Kube, applied
from todo_deploy.pipeline.prefetch import Prefetch
from todo_deploy.stages import cluster, raw_deploy

pytestmark = pytest.mark.cluster


def versions(kube: Kube, s: Any) -> dict[str, str]:
    """resourceVersion of every object of the release (and its namespace)."""
    objects = kube.list_owned(s.namespace, raw_deploy.raw_selector(s.settings().settings))
    out = {applied.key_of(o): o["metadata"]["resourceVersion"] for o in objects if o["kind"] != "Pod"}
    ns = kube.get("v1", "Namespace", s.namespace)
    out[f"Namespace//{s.namespace}"] = ns["metadata"]["resourceVersion"]
    return out


def failures(result: Any) -> list[tuple[str, str]]:
    return [(c.name, c.evidence) for c in result.failures]


def test_only_changed_and_hand_edited_objects_are_applied(scratch: Callable[[], Any]) -> None:
    s = scratch()
    quiet: Callable[[str], None] = lambda _: None
    first = raw_deploy.run(s.settings(), log=print)
    assert first.passed, failures(first)
    kube = Kube(s.settings().settings.context_name)
    total = first.details["applied"] + first.details["unchanged"]

    # Nothing changed: nothing is applied, nothing in the cluster is written.
    before = versions(kube, s)
    again = raw_deploy.run(s.settings(), log=quiet)
    assert again.passed, failures(again)
    assert (again.details["applied"], again.details["unchanged"]) == (0, total), again.details
    assert versions(kube, s) == before

    # One setting that changes one object: that object is applied, no other.
    frontend = f"Deployment/{s.release}-frontend"
    changed = raw_deploy.run(s.settings(FRONTEND_REPLICAS="2"), log=print)
    assert changed.passed, failures(changed)
    assert (changed.details["applied"], changed.details["changed"]) == (1, [frontend])
    after = versions(kube, s)
    moved = {k for k in before if before[k] != after.get(k)}
    assert moved == {f"Deployment/{s.namespace}/{s.release}-frontend"}, moved

    # Scaled by hand (another field manager): noticed by its resourceVersion, put back.
    backend = f"{s.release}-backend"
    kube.request("PATCH", kube.path("apps/v1", "Deployment", s.namespace, backend),
                 body={"spec": {"replicas": 3}}, query=[("fieldManager", "by-hand")],
                 content_type="application/merge-patch+json")
    fixed = raw_deploy.run(s.settings(FRONTEND_REPLICAS="2"), log=print)
    assert fixed.passed, failures(fixed)
    assert (fixed.details["applied"], fixed.details["changed"]) == (1, [f"Deployment/{backend}"])
    assert kube.get("apps/v1", "Deployment", backend, s.namespace)["spec"]["replicas"] == 1


def test_the_migration_job_runs_once_per_migrations(
    scratch: Callable[[], Any], built_images: dict[str, ImageRef], changed_backend: ImageRef
) -> None:
    s = scratch()
    kube = Kube("")
    first_image = dataclasses.replace(built_images["backend"], migrations="migrations-one")
    s.set_images({**built_images, "backend": first_image})
    first = raw_deploy.run(s.settings(), log=print)
    assert first.passed, failures(first)
    [job] = kube.list("batch/v1", "Job", s.namespace)
    assert "migration" in first.details["timings_s"]

    # New code, the same migrations: the finished Job stays as it is, nothing migrates.
    new_code = dataclasses.replace(changed_backend, migrations="migrations-one")
    s.set_images({**built_images, "backend": new_code})
    second = raw_deploy.run(s.settings(), log=print)
    assert second.passed, failures(second)
    [same] = kube.list("batch/v1", "Job", s.namespace)
    assert same["metadata"]["uid"] == job["metadata"]["uid"]
    assert same["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"]
    assert same["spec"]["template"]["spec"]["containers"][0]["image"] == first_image.ref
    assert "migration" not in second.details["timings_s"]
    checks = {c.name: c.verdict.value for c in second.checks}
    assert checks["migration Job succeeded"] == "pass"
    assert checks["pods run exactly the built images"] == "pass"  # the new code runs
    pods = kube.list("v1", "Pod", s.namespace, "app.kubernetes.io/component=backend")
    assert {p["spec"]["containers"][0]["image"] for p in pods
            if not p["metadata"].get("deletionTimestamp")} == {new_code.ref}

    # New migrations: a new Job migrates, the finished one is pruned.
    new_migrations = dataclasses.replace(changed_backend, migrations="migrations-two")
    s.set_images({**built_images, "backend": new_migrations})
    third = raw_deploy.run(s.settings(), log=print)
    assert third.passed, failures(third)
    names = [j["metadata"]["name"] for j in kube.list("batch/v1", "Job", s.namespace)]
    assert len(names) == 1 and names[0] != job["metadata"]["name"]
    assert "migration" in third.details["timings_s"]


def test_the_deploy_finds_its_render_made_by_the_prefetch_or_the_cluster_stage(
    scratch: Callable[[], Any], built_images: dict[str, ImageRef], changed_backend: ImageRef,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = scratch()
    quiet: Callable[[str], None] = lambda _: None
    nodeport = {"FRONTEND_SERVICE_TYPE": "NodePort"}
    first = raw_deploy.run(s.settings(**nodeport), log=quiet)
    assert first.passed, failures(first)
    assert live_node_port(Kube(s.settings().settings.context_name), s.settings().settings) > 0

    def no_render(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rendered again")

    # `inv up`'s prefetch, told of the image being built, rendered what the deploy applies.
    ahead = Prefetch(s.settings())
    ahead.planned_image(ImageRef("backend", changed_backend.repository, changed_backend.tag,
                                 migrations=changed_backend.migrations))
    ahead.wait()
    assert ahead.errors == []
    s.set_images({**built_images, "backend": changed_backend})
    with monkeypatch.context() as m:
        m.setattr(manifests, "render_objects", no_render)
        second = raw_deploy.run(s.settings(), log=quiet)
    assert second.passed, failures(second)
    assert f"Deployment/{s.release}-backend" in second.details["changed"]

    # The cluster stage renders as the deploy will (the live NodePort kept): once for both.
    s.set_images(built_images)
    assert cluster.run(s.settings(), log=quiet).passed
    with monkeypatch.context() as m:
        m.setattr(manifests, "render_objects", no_render)
        third = raw_deploy.run(s.settings(), log=quiet)
    assert third.passed, failures(third)
    assert f"Deployment/{s.release}-backend" in third.details["changed"]
