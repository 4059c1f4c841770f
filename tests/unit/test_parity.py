"""The raw manifests and the chart describe the same objects (one source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from todo_deploy import helm, render
from todo_deploy.artifacts import ImageRef
from todo_deploy.config import load_settings

IMAGES = {
    "backend": ImageRef("backend", "todo-backend", "c0ffee1234567890"),
    "frontend": ImageRef("frontend", "todo-frontend", "beef00112233aabb"),
}
# Only in one of the two, by design: the tool creates the Namespace for raw
# deploys (Helm's convention: the namespace is not part of the release), and
# `helm test` pods exist only in the chart.
ONLY_RAW = {"Namespace"}


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What must match: kind, name, and per container the image, command, probes,
    resources, ports, env sources and security contexts."""
    out: dict[str, Any] = {"kind": obj["kind"], "name": obj["metadata"]["name"]}
    spec = obj.get("spec", {})
    if obj["kind"] == "Service":
        out["type"], out["ports"], out["selector"] = spec["type"], spec["ports"], spec["selector"]
    if obj["kind"] == "NetworkPolicy":
        out["spec"] = spec
    if obj["kind"] == "ConfigMap":
        out["data"] = obj["data"]
    if "template" in spec:
        pod = spec["template"]["spec"]
        out["replicas"] = spec.get("replicas")
        out["selector"] = spec.get("selector")
        out["strategy"] = spec.get("strategy") or spec.get("updateStrategy")
        out["pod"] = {k: v for k, v in pod.items() if k not in ("initContainers", "containers")}
        out["containers"] = [
            {k: c.get(k) for k in ("name", "image", "imagePullPolicy", "command", "ports", "env",
                                   "envFrom", "resources", "livenessProbe", "readinessProbe",
                                   "startupProbe", "securityContext", "volumeMounts")}
            for c in pod.get("initContainers", []) + pod["containers"]
        ]
        out["template_labels"] = {
            k: v for k, v in spec["template"]["metadata"]["labels"].items()
            if k not in ("helm.sh/chart", "app.kubernetes.io/managed-by")
        }
        out["volumeClaimTemplates"] = [
            {"name": t["metadata"]["name"], "spec": t["spec"]}
            for t in spec.get("volumeClaimTemplates", [])
        ]
    if obj["kind"] == "Job":
        out["backoffLimit"] = spec["backoffLimit"]
    return out


def both(tmp_path: Path, **env: str) -> tuple[dict, dict]:
    settings = load_settings(tmp_path, environ=env).settings
    raw = render.render_manifests(settings, IMAGES)
    chart = helm.embedded().template(
        render.CHART_DIR, settings.release_name, settings.namespace,
        render.helm_values(settings, IMAGES), kube_version="v1.20.2",
    )
    chart = [o for o in chart if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") != "test"]
    key = lambda o: (o["kind"], o["metadata"]["name"])
    return (
        {key(o): comparable(o) for o in raw if o["kind"] not in ONLY_RAW},
        {key(o): comparable(o) for o in chart},
    )


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"RELEASE_NAME": "demo", "NAMESPACE": "shop", "BACKEND_REPLICAS": "3",
         "FRONTEND_SERVICE_TYPE": "NodePort", "POSTGRES_IMAGE": "localcluster/postgres:15"},
        {"DATABASE_MODE": "external", "DATABASE_URL": "postgresql://u:p@db:5432/todo",
         "FRONTEND_SERVICE_TYPE": "ClusterIP", "OPENAI_API_KEY": "sk-x", "LLM_MODEL": "m"},
    ],
    ids=["bundled-defaults", "bundled-custom", "external"],
)
def test_raw_and_chart_render_the_same_objects(tmp_path: Path, env: dict[str, str]) -> None:
    raw, chart = both(tmp_path, **env)
    assert sorted(raw) == sorted(chart)
    for key in raw:
        assert raw[key] == chart[key], key


def test_parity_notices_a_difference(tmp_path: Path) -> None:
    """The comparison is not vacuous: a changed probe in one of them shows up."""
    raw, chart = both(tmp_path)
    key = ("Deployment", "todo-chatbot-backend")
    chart[key]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/health"
    assert raw[key] != chart[key]
    assert raw[key]["containers"][0]["image"] == IMAGES["backend"].ref
