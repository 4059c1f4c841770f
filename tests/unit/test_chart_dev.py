"""The chart's dev mode (values.dev.enabled, live update, issue 24): the backend's and frontend's code on
an emptyDir seeded from the image, served by todo_serving.devloop; Pod Security "restricted" kept."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_chart import template
from todo_deploy.kube import pod_security

APPS = {"backend": "todo_api", "frontend": "todo_web"}


def deployments(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o
            for o in template(values) if o["kind"] == "Deployment"}


def test_dev_off_renders_the_image_pods() -> None:
    for component, deployment in deployments({}).items():
        pod = deployment["spec"]["template"]
        assert "todo-chatbot/dev" not in pod["metadata"]["labels"], component
        assert "initContainers" not in pod["spec"], component
        assert "command" not in pod["spec"]["containers"][0], component
        assert [v["name"] for v in pod["spec"]["volumes"]] == ["tmp"], component


@pytest.mark.parametrize("component", sorted(APPS))
def test_dev_on_serves_the_code_from_a_seeded_emptydir(component: str) -> None:
    pod = deployments({"dev": {"enabled": True}})[component]["spec"]["template"]
    assert pod["metadata"]["labels"]["todo-chatbot/dev"] == "true"
    app = pod["spec"]["containers"][0]
    assert app["command"] == ["/opt/venv/bin/python", "-m", "todo_serving.devloop", APPS[component]]
    assert {"name": "dev-code", "mountPath": "/opt/app"} in app["volumeMounts"]
    [seed] = pod["spec"]["initContainers"]
    assert (seed["name"], seed["image"], seed["volumeMounts"]) == (
        "seed-code", app["image"], [{"name": "dev-code", "mountPath": "/seed"}])
    assert seed["command"][:2] == ["/opt/venv/bin/python", "-c"]
    assert 'shutil.copytree(source, target, dirs_exist_ok=True)' in seed["command"][2]
    assert seed["securityContext"] == app["securityContext"]
    assert seed["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "dev-code", "emptyDir": {"sizeLimit": "64Mi"}} in pod["spec"]["volumes"]


def test_dev_on_stays_within_pod_security_restricted() -> None:
    objects = template({"dev": {"enabled": True}})
    assert [o for o in objects if o["kind"] == "Deployment" and "initContainers" in o["spec"]["template"]["spec"]]
    assert [(o["kind"], o["metadata"]["name"], pod_security.pss_violations(o)) for o in objects
            if pod_security.pss_violations(o)] == []


def test_dev_changes_only_the_app_pods() -> None:
    fixed = {"secrets": {name: f"{name}-0123456789abcdef0123456789" for name in (
        "authSecret", "sessionSecret", "proxySecret", "postgresPassword")}}  # else generated per render

    def others(values: dict[str, Any]) -> list[dict[str, Any]]:
        return [o for o in template({**fixed, **values}) if o["kind"] != "Deployment"]

    assert others({"dev": {"enabled": True}}) == others({})


def test_the_schema_takes_dev_enabled_as_a_boolean_only() -> None:
    with pytest.raises(Exception, match="enabled"):
        template({"dev": {"enabled": "yes"}})
    with pytest.raises(Exception, match="additional|extra|not allowed"):
        template({"dev": {"enabled": True, "sync": True}})


def test_dev_doubles_the_apps_memory_limits_for_the_swap() -> None:
    # During a swap the retiring process serves beside the new one: measured ~195 MB of the
    # backend's 256Mi and ~107 MB of the frontend's 128Mi; dev mode gives them room.
    limits = {name: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
              for name, d in deployments({"dev": {"enabled": True}}).items()}
    normal = {name: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
              for name, d in deployments({}).items()}
    assert [v["memory"] for v in limits.values()] == ["512Mi", "256Mi"]
    assert [v["memory"] for v in normal.values()] == ["256Mi", "128Mi"]
    assert all(limits[n]["cpu"] == normal[n]["cpu"] for n in limits)
