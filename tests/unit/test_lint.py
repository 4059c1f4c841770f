"""`inv lint`'s stage: passes on the repo, fails naming the culprit on seeded faults."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from todo_deploy.chart import values as chart_values
from todo_deploy.config import load_settings
from todo_deploy.gates import Verdict
from todo_deploy.kube import pod_security
from todo_deploy.stages import lint

ROOT = chart_values.PROJECT_ROOT


def good_pod() -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "x:1",
        "ports": [{"containerPort": 8000, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {}, "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }}},
    }


SPEC = "spec.template.spec"
C0 = f"{SPEC}.containers[0]"


def mutate(path: str, value: Any) -> dict[str, Any]:
    obj = good_pod()
    node: Any = obj["spec"]["template"]["spec"]
    parts = path.split(".")
    for part in parts[:-1]:
        if part.endswith("]"):
            name, index = part[:-1].split("[")
            node = node[name][int(index)]
        else:
            node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return obj


def test_good_pod_passes() -> None:
    assert pod_security.pss_violations(good_pod()) == []
    assert pod_security.pss_violations({"kind": "Service", "metadata": {"name": "s"}, "spec": {}}) == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("containers[0].securityContext.allowPrivilegeEscalation", True,
         f"{C0}.securityContext.allowPrivilegeEscalation must be false"),
        ("containers[0].securityContext.allowPrivilegeEscalation", None,
         f"{C0}.securityContext.allowPrivilegeEscalation must be false"),
        ("containers[0].securityContext.privileged", True, f"{C0}.securityContext.privileged"),
        ("containers[0].securityContext.capabilities", {"drop": ["NET_RAW"]},
         f"{C0}.securityContext.capabilities.drop must include ALL"),
        ("containers[0].securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
         f"{C0}.securityContext.capabilities.add[0]"),
        ("securityContext.runAsNonRoot", None, f"{C0}.securityContext.runAsNonRoot must be true"),
        ("securityContext.runAsUser", 0, f"{SPEC}.securityContext.runAsUser must not be 0"),
        ("securityContext.seccompProfile", {"type": "Unconfined"},
         f"{SPEC}.securityContext.seccompProfile.type"),
        ("securityContext.seccompProfile", None, f"{C0}.securityContext.seccompProfile.type"),
        ("hostNetwork", True, f"{SPEC}.hostNetwork"),
        ("hostPID", True, f"{SPEC}.hostPID"),
        ("volumes", [{"name": "h", "hostPath": {"path": "/"}}], f"{SPEC}.volumes[0].hostPath"),
        ("containers[0].ports", [{"containerPort": 80, "hostPort": 80}], f"{C0}.ports[0].hostPort"),
        ("containers[0].securityContext.readOnlyRootFilesystem", False,
         f"{C0}.securityContext.readOnlyRootFilesystem"),
        ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}],
         f"{SPEC}.securityContext.sysctls[0].name"),
    ],
)
def test_each_rule_names_object_and_field(path: str, value: Any, field: str) -> None:
    problems = pod_security.pss_violations(mutate(path, value))
    assert any(p.startswith("Deployment/web: ") and field in p for p in problems), problems


def test_init_containers_are_checked() -> None:
    obj = good_pod()
    init = copy.deepcopy(obj["spec"]["template"]["spec"]["containers"][0])
    init["securityContext"]["allowPrivilegeEscalation"] = True
    obj["spec"]["template"]["spec"]["initContainers"] = [init]
    assert pod_security.pss_violations(obj) == [
        (f"Deployment/web: {SPEC}.initContainers[0].securityContext.allowPrivilegeEscalation "
        "must be false")
    ]


def test_strict_schema_catches_unknown_fields_and_types() -> None:
    obj = good_pod()
    obj["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    obj["spec"]["template"]["metadata"]["labels"] = {"a": "b"}
    assert lint.schema_problems([obj], "1.30") == []
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Never"
    obj["spec"]["replicas"] = "two"
    problems = lint.schema_problems([obj], "1.30")
    assert len(problems) == 1 and problems[0].startswith("Deployment/web: ")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_settings(tmp_path_factory.mktemp("settings"), environ={})


def test_stage_passes_on_the_repo(loaded) -> None:  # type: ignore[no-untyped-def]
    result = lint.run(loaded, k8s_dir=ROOT / "k8s", chart_dir=chart_values.CHART_DIR,
                      docker_dir=ROOT / "docker", log=lambda _: None)
    assert result.stage == "lint"
    assert result.passed, [(c.name, c.evidence) for c in result.failures]
    names = [c.name for c in result.checks]
    assert "hadolint backend" in names and "hadolint frontend" in names
    assert "helm lint --strict (production values)" in names
    assert f"schema raw manifests (k8s {lint.latest_version()}, strict)" in names
    assert "schema chart (production values) (k8s 1.30, strict)" in names
    assert any(n.startswith("pod security restricted: chart") for n in names)
    production = next(c for c in result.checks
                      if c.name == "schema chart (production values) (k8s 1.30, strict)")
    assert "PodDisruptionBudget" in production.evidence
    assert "HorizontalPodAutoscaler" in production.evidence


def test_stage_fails_on_a_seeded_bad_manifest(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s)
    backend = k8s / "backend.yaml"
    text = backend.read_text()
    text = text.replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1)
    text = text.replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: IfNotPresent\n"
                        "          imagePullPolcy: Always", 1)
    backend.write_text(text)
    result = lint.run(loaded, k8s_dir=k8s, chart_dir=chart_values.CHART_DIR,
                      docker_dir=ROOT / "docker", log=lambda _: None)
    assert not result.passed
    failed = {c.name: c for c in result.failures}
    pss = failed["pod security restricted: raw manifests"]
    assert ("Deployment/todo-chatbot-backend: spec.template.spec.containers[0]"
            ".securityContext.allowPrivilegeEscalation must be false") in pss.evidence
    schema = failed["schema raw manifests (k8s 1.30, strict)"]
    assert "Deployment/todo-chatbot-backend" in schema.evidence and "imagePullPolcy" in schema.evidence
    assert pss.fix and pss.verdict is Verdict.FAIL
    assert not any(n.startswith("schema chart") for n in failed)  # the chart is still fine


def test_stage_fails_on_a_bad_chart(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chart = tmp_path / "todo-chatbot"
    shutil.copytree(chart_values.CHART_DIR, chart)
    helpers = chart / "templates" / "_helpers.tpl"
    text = helpers.read_text()
    assert "drop: [ALL]" in text
    helpers.write_text(text.replace("drop: [ALL]", "drop: [NET_RAW]"))
    result = lint.run(loaded, k8s_dir=ROOT / "k8s", chart_dir=chart,
                      docker_dir=ROOT / "docker", log=lambda _: None)
    failed = {c.name: c for c in result.failures}
    assert "pod security restricted: chart (default values)" in failed
    evidence = failed["pod security restricted: chart (default values)"].evidence
    assert ("Deployment/todo-chatbot-backend: spec.template.spec.containers[0].securityContext"
            ".capabilities.drop must include ALL") in evidence
    assert "pod security restricted: raw manifests" not in failed


def test_missing_dockerfile_fails(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = lint.run(loaded, k8s_dir=ROOT / "k8s", chart_dir=chart_values.CHART_DIR,
                      docker_dir=tmp_path, log=lambda _: None)
    failed = {c.name for c in result.failures}
    assert failed == {"hadolint backend", "hadolint frontend"}
