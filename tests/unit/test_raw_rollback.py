"""The pure parts of the raw <-> Helm hand-over (todo_deploy/kube/switch.py) and of raw
rollbacks (the passing renders kept in .state, applied.py; raw_rollback's refusals)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from todo_deploy.config import load_settings
from todo_deploy.kube import applied, switch
from todo_deploy.release import rollback as raw_rollback


def obj(kind: str, name: str, api: str = "v1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "ns", **meta}}


def test_helm_marks_are_what_helm_checks_before_adopting() -> None:
    assert switch.helm_marks("rel", "ns") == {
        "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "rel", "meta.helm.sh/release-namespace": "ns"},
    }
    # Back to raw: the label is the raw path's again and the annotations are removed
    # (null in a JSON merge patch deletes the key).
    assert switch.raw_marks("todo-deploy") == {
        "labels": {"app.kubernetes.io/managed-by": "todo-deploy"},
        "annotations": {"meta.helm.sh/release-name": None, "meta.helm.sh/release-namespace": None},
    }


def test_the_release_record_is_the_release_storage_secrets_only() -> None:
    record = {**obj("Secret", "sh.helm.release.v1.rel.v2", labels={"owner": "helm", "name": "rel"}),
              "type": "helm.sh/release.v1"}
    assert switch.is_release_record(record, "rel")
    assert not switch.is_release_record(record, "other")  # another release's
    app_secret = {**obj("Secret", "rel-backend", labels={"owner": "helm", "name": "rel"}),
                  "type": "Opaque"}
    assert not switch.is_release_record(app_secret, "rel")  # the app's, same labels
    unlabelled = {**obj("Secret", "sh.helm.release.v1.rel.v1"), "type": "helm.sh/release.v1"}
    assert not switch.is_release_record(unlabelled, "rel")


def test_what_is_adopted_and_what_is_left_over() -> None:
    live = [obj("Deployment", "rel-backend", "apps/v1"), obj("Service", "rel-backend"),
            obj("StatefulSet", "rel-postgres", "apps/v1"), obj("Secret", "rel-backend"),
            obj("PersistentVolumeClaim", "data-rel-postgres-0"),
            obj("Job", "rel-migrate-abc", "batch/v1"),
            obj("Job", "rel-migrate-0123456789ab", "batch/v1"),  # the same name as Helm's
            obj("Pod", "rel-test-backend"),  # a test pod: no controller
            obj("ConfigMap", "rel-postgres"),  # named like a rendered object of another kind
            obj("Pod", "rel-backend-x", ownerReferences=[{"kind": "ReplicaSet"}])]
    rendered = [obj("Deployment", "rel-backend", "apps/v1"), obj("Service", "rel-backend"),
                obj("StatefulSet", "rel-postgres", "apps/v1"),
                obj("Job", "rel-migrate-0123456789ab", "batch/v1")]
    adopted = [f"{o['kind']}/{o['metadata']['name']}" for o in switch.to_adopt(live, rendered)]
    assert adopted == ["Deployment/rel-backend", "Service/rel-backend", "StatefulSet/rel-postgres"]
    # Jobs are finished work with an immutable pod template: deleted, never adopted, even
    # under the name Helm renders (Helm runs its own); a controller's pod goes with its
    # controller, a pod of none (a test pod) is deleted.
    left = [f"{o['kind']}/{o['metadata']['name']}" for o in switch.leftovers(live, rendered)]
    assert left == ["Job/rel-migrate-abc", "Job/rel-migrate-0123456789ab", "Pod/rel-test-backend"]


def test_the_last_passing_renders_are_kept_without_secrets(tmp_path: Path) -> None:
    secret = {**obj("Secret", "rel-backend"), "data": {"AUTH_SECRET": "c2VjcmV0"}}
    for n in range(4):
        deployment = {**obj("Deployment", "rel-backend", "apps/v1"), "spec": {"n": n}}
        applied.remember_render(tmp_path, "scope", {"backend": f"b:{n}"}, [secret, deployment])
    applied.remember_render(tmp_path, "scope", {"backend": "b:3"}, [secret, deployment])  # no change
    renders = applied.passing_renders(tmp_path, "scope")
    assert [r["images"]["backend"] for r in renders] == ["b:1", "b:2", "b:3"]
    assert "c2VjcmV0" not in (tmp_path / applied.RENDERS).read_text()
    assert all(o["kind"] != "Secret" for r in renders for o in r["objects"])
    assert applied.passing_renders(tmp_path, "another/target") == []
    applied.drop_newest_render(tmp_path, "scope")
    assert [r["images"]["backend"] for r in applied.passing_renders(tmp_path, "scope")] == ["b:1", "b:2"]


def test_raw_rollback_says_when_there_is_nothing_to_go_back_to(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "ns",
                                      "RELEASE_NAME": "rel"})
    none = raw_rollback.rollback(loaded, kube=None)
    assert not none.ok
    assert none.message.startswith("nothing to roll back to: 0 passing raw deploys of rel in ns")
    scope = applied.scope_of(loaded.settings)
    applied.remember_render(loaded.state_dir, scope, {"backend": "b:1"}, [obj("Service", "s")])
    one = raw_rollback.rollback(loaded, kube=None)
    assert not one.ok and "1 passing raw deploy of rel" in one.message, one.message
    assert json.loads((loaded.state_dir / applied.RENDERS).read_text())["scope"] == scope


def test_renders_from_before_a_helm_release_are_forgotten(tmp_path: Path) -> None:
    applied.remember_render(tmp_path, "scope", {"backend": "b:1"}, [obj("Service", "s")])
    applied.forget_renders(tmp_path)
    applied.forget_renders(tmp_path)  # none: no error
    assert applied.passing_renders(tmp_path, "scope") == []


class NoHelmKube:
    """A cluster with no Helm release record in the namespace."""

    def __init__(self, context: str = "") -> None:
        self.context = context

    def list(self, api_version: str, kind: str, namespace: str = "", selector: str = "") -> list:
        assert (kind, selector) == ("Secret", "owner=helm,name=rel")
        return []


def test_inv_rollback_without_a_helm_release_rolls_the_raw_deploy_back(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from todo_deploy.mcp import tools
    from todo_deploy.stages import helm_deploy as helm_stage

    monkeypatch.setattr(helm_stage, "Kube", NoHelmKube)
    loaded = load_settings(tmp_path, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "ns",
                                      "RELEASE_NAME": "rel"})
    ok, message = helm_stage.rollback_any(loaded)
    # Before: Helm only ("no Helm release rel in namespace ns: nothing to roll back").
    assert not ok and message.startswith("nothing to roll back to: 0 passing raw deploys"), message
    ok, message = helm_stage.rollback_any(loaded, revision=3)
    assert not ok and "run `inv rollback` without --revision" in message
    out = tools.rollback(loaded)
    assert not out.ok and out.message.startswith("nothing to roll back to")
