"""Both deploy modes render the one chart, so they deploy the same objects under
the same names, for every release name `inv config` accepts."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from todo_deploy import helm
from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import Settings, SettingsError, load_settings

IMAGES = {
    "backend": ImageRef("backend", "todo-backend", "c0ffee123456"),
    "frontend": ImageRef("frontend", "todo-frontend", "beef00112233"),
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Only in the raw path: the Namespace (Helm installs into an existing one).
ONLY_RAW = {"Namespace"}
# What the two modes may differ in: who manages the objects, and Helm's hook
# annotations (the migration Job is a pre-install hook with an external database).
MODE_LABEL = "app.kubernetes.io/managed-by"


def load(tmp_path: Path, **env: str) -> Settings:
    return load_settings(tmp_path, environ=env).settings


def helm_objects(settings: Settings) -> list[dict[str, Any]]:
    """What `inv deploy --helm` installs (test pods aside), as Helm renders it."""
    rendered = helm.embedded().template(
        chart_values.CHART_DIR, settings.release_name, settings.namespace,
        chart_values.helm_values(settings, IMAGES), kube_version="v1.20.2",
    )
    return [o for o in rendered
            if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") != "test"]


def raw_objects(settings: Settings) -> list[dict[str, Any]]:
    """What `inv deploy` applies (Secrets aside)."""
    return [o for o in manifests.render_manifests(settings, IMAGES) if o["kind"] not in ONLY_RAW]


def normal(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta.get("labels", {}).pop(MODE_LABEL, None)
    annotations = {k: v for k, v in (meta.pop("annotations", None) or {}).items()
                   if not k.startswith("helm.sh/hook")}
    if annotations:
        meta["annotations"] = annotations
    template = obj.get("spec", {}).get("template")
    if template:
        template["metadata"].get("labels", {}).pop(MODE_LABEL, None)
    return obj


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"RELEASE_NAME": "demo", "NAMESPACE": "shop", "BACKEND_REPLICAS": "3", "DATABASE_MAX_CONNECTIONS": "200",
         "FRONTEND_SERVICE_TYPE": "NodePort", "POSTGRES_IMAGE": "mirror.local/postgres:15"},
        {"DATABASE_MODE": "external", "DATABASE_URL": "postgresql://u:p@db:6543/todo",
         "FRONTEND_SERVICE_TYPE": "ClusterIP", "OPENAI_API_KEY": "sk-x", "LLM_MODEL": "m",
         "OPENAI_BASE_URL": "http://ollama.ai:11434/v1"},
    ],
    ids=["bundled-defaults", "bundled-custom", "external-llm"],
)
def test_raw_and_helm_deploy_the_same_objects(tmp_path: Path, env: dict[str, str]) -> None:
    settings = load(tmp_path, **env)
    raw = {key(o): normal(o) for o in raw_objects(settings)}
    chart = {key(o): normal(o) for o in helm_objects(settings)}
    assert sorted(raw) == sorted(chart)
    for name, obj in raw.items():
        assert obj == chart[name], name
    # ...and the two differ exactly where they should.
    assert {o["metadata"]["labels"][MODE_LABEL] for o in raw_objects(settings)} == {"todo-deploy"}
    assert {o["metadata"]["labels"][MODE_LABEL] for o in helm_objects(settings)} == {"Helm"}


def test_parity_notices_a_difference(tmp_path: Path) -> None:
    """The comparison is not vacuous: a changed probe in one of them shows up."""
    settings = load(tmp_path)
    raw = {key(o): normal(o) for o in raw_objects(settings)}
    chart = {key(o): normal(o) for o in helm_objects(settings)}
    name = ("Deployment", "todo-chatbot-backend")
    assert raw[name] == chart[name]
    chart[name]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/x"
    assert raw[name] != chart[name]


def release_names() -> list[str]:
    """Every length `inv config` accepts (1-53), in two shapes: with a '-' wherever
    a cut may land (the chart must not leave a trailing '-'), and without."""
    names = []
    for length in range(1, 54):
        for pattern in ("a-" * 27, "r" + "0123456789" * 6):
            name = pattern[:length]
            names.append(name[:-1] + "z" if name.endswith("-") else name)
    return sorted(set(names), key=lambda n: (len(n), n))


def test_the_sweep_covers_every_accepted_length(tmp_path: Path) -> None:
    assert {len(n) for n in release_names()} == set(range(1, 54))
    with pytest.raises(SettingsError):
        load(tmp_path, RELEASE_NAME="a" * 54)  # the sweep ends where `inv config` does


def names_problems(settings: Settings) -> list[str]:
    """Everything wrong with the names the two modes give one release's objects."""
    release = settings.release_name
    raw = raw_objects(settings)
    # The chart with Helm's values, hooks and test pods included (rendered like the
    # raw path for speed: the test above shows Helm's engine renders the same).
    everything = [
        obj
        for text in manifests.render_chart(
            chart_values.helm_values(settings, IMAGES), release, settings.namespace).values()
        for _, obj in manifests.documents(text)
    ]
    problems = []
    helm_names = {key(o) for o in everything if o["kind"] != "Pod"}
    if {key(o) for o in raw} != helm_names:
        problems.append(f"names differ: {sorted({key(o) for o in raw} ^ helm_names)}")
    for kind, name in sorted({key(o) for o in everything}):
        if not DNS_LABEL.match(name) or len(name) > 63:
            problems.append(f"{kind}/{name}: not a DNS label of at most 63 characters")
        if kind == "StatefulSet" and len(name) > 52:  # room for controller-revision-hash
            problems.append(f"{kind}/{name}: longer than 52 characters")
    # Services keep <release>-<component>: the hosts in BACKEND_URL and DATABASE_URL.
    services = {o["metadata"]["name"] for o in raw if o["kind"] == "Service"}
    if services != {f"{release}-backend", f"{release}-frontend", f"{release}-postgres"}:
        problems.append(f"Services {sorted(services)}")
    host = chart_values.database_url(settings).split("@", 1)[1].split(":", 1)[0]
    config = next(o for o in raw if o["kind"] == "ConfigMap")["data"]
    sts = next(o for o in raw if o["kind"] == "StatefulSet")
    if host not in services or sts["spec"]["serviceName"] != host:
        problems.append(f"DATABASE_URL host {host}, StatefulSet serviceName {sts['spec']['serviceName']}")
    if config["BACKEND_URL"] != f"http://{release}-backend:8000":
        problems.append(f"BACKEND_URL {config['BACKEND_URL']}")
    job = manifests.migration_job(raw)
    if not (job.endswith("-migrate-c0ffee123456") and job.startswith(release[:30])):
        problems.append(f"Job {job}")
    return problems


def test_names_fit_and_agree_for_every_release_name(tmp_path: Path) -> None:
    """Jobs and Services <= 63 characters, StatefulSets <= 52, no trailing '-', the
    same names in both modes: for every length and both shapes of release_names()."""
    problems = {
        release: found
        for release in release_names()
        if (found := names_problems(load(tmp_path, RELEASE_NAME=release)))
    }
    assert problems == {}


def test_the_name_checks_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: a raw path that named its Job after another tag is caught."""
    settings = load(tmp_path, RELEASE_NAME="a" * 53)
    assert names_problems(settings) == []
    real = chart_values.raw_values

    def other_tag(s: Settings, images: dict[str, ImageRef], *rest: Any) -> dict[str, Any]:
        values = real(s, images, *rest)
        values["backend"]["image"]["tag"] = "different1234"
        return values

    monkeypatch.setattr(chart_values, "raw_values", other_tag)
    found = names_problems(settings)
    assert any(p.startswith("names differ") and "migrate-different123" in p for p in found), found
