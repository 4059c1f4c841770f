"""`inv docs` from recorded object data: tables, the Mermaid block, the SVG, no secrets."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from todo_deploy.artifacts import ImageRef, save_images
from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.gates import Check, GateResult, Verdict, save, scopes_for
from todo_deploy.stages.docs import diagram, report
from todo_deploy.stages.docs import stage as docs_stage

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-01-02T10:30:00Z"
SECRET_IN_OBJECT = "s3cr3t-value-in-a-secret-object"
LABELS = {"app.kubernetes.io/instance": "todo-chatbot", "app.kubernetes.io/part-of": "todo-chatbot"}


def meta(name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "todo",
        "uid": f"uid-{name}",
        "creationTimestamp": CREATED,
        "labels": {**LABELS, "app.kubernetes.io/component": component},
        **extra,
    }


def workload(kind: str, name: str, component: str, ready: int, want: int, **spec: Any) -> dict:
    pod_labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "todo-chatbot"}
    template_spec = {
        "containers": [
            {
                "name": component,
                "envFrom": [
                    {"secretRef": {"name": name}},
                    {"configMapRef": {"name": "todo-chatbot-config"}},
                ],
            }
        ]
    }
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": meta(name, component),
        "spec": {
            "replicas": want,
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": {"labels": pod_labels}, "spec": template_spec},
            **spec,
        },
        "status": {"readyReplicas": ready, "replicas": want},
    }


def svc(name: str, component: str, kind: str, port: int, node_port: int | None = None) -> dict:
    p: dict[str, Any] = {"port": port, "targetPort": "http", "protocol": "TCP"}
    if node_port:
        p["nodePort"] = node_port
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "todo-chatbot"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, component),
            "spec": {"type": kind, "ports": [p], "selector": selector}}  # fmt: skip


def netpol(target: str, source: str, port: int) -> dict:
    def sel(n: str) -> dict:
        return {"matchLabels": {"app.kubernetes.io/name": n}}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(target, "network"),
        "spec": {"podSelector": sel(target),
                 "ingress": [{"from": [{"podSelector": sel(source)}], "ports": [{"port": port}]}]},
    }  # fmt: skip


def recorded_objects(node_port: int = 31080) -> list[dict[str, Any]]:
    encoded = base64.b64encode(SECRET_IN_OBJECT.encode()).decode()
    postgres = workload(
        "StatefulSet", "todo-chatbot-postgres", "database", 1, 1,
        volumeClaimTemplates=[{"metadata": {"name": "data"}}],
    )  # fmt: skip
    return [
        workload("Deployment", "todo-chatbot-backend", "backend", 2, 2),
        workload("Deployment", "todo-chatbot-frontend", "frontend", 1, 2),
        postgres,
        svc("todo-chatbot-frontend", "frontend", "NodePort", 80, node_port),
        svc("todo-chatbot-backend", "backend", "ClusterIP", 8000),
        svc("todo-chatbot-postgres", "database", "ClusterIP", 5432),
        netpol("todo-chatbot-backend", "todo-chatbot-frontend", 8000),
        netpol("todo-chatbot-postgres", "todo-chatbot-backend", 5432),
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("todo-chatbot-backend", "backend"),
         "data": {"AUTH_SECRET": encoded, "DATABASE_URL": encoded}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("todo-chatbot-config", "config"),
         "data": {"LLM_PROVIDER": "offline", "BACKEND_URL": "http://todo-chatbot-backend:8000"}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": meta("data-todo-chatbot-postgres-0", "database"),
         "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta("todo-chatbot-backend-abc", "backend"),
         "spec": {"containers": [{"name": "backend"}]},
         "status": {"phase": "Running",
                    "containerStatuses": [{"name": "backend", "ready": True, "restartCount": 0}]}},
    ]  # fmt: skip


def loaded_settings(tmp_path: Path) -> LoadedSettings:
    return load_settings(tmp_path, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "todo"})


# ---- the graph and its Mermaid rendering ------------------------------------------------


def test_graph_edges_follow_selectors_policies_and_references() -> None:
    graph = diagram.build_graph(recorded_objects())
    edges = {(e.src, e.dst) for e in graph.edges}
    fe_svc = diagram.node_id("Service", "todo-chatbot-frontend")
    fe = diagram.node_id("Deployment", "todo-chatbot-frontend")
    be = diagram.node_id("Deployment", "todo-chatbot-backend")
    pg = diagram.node_id("StatefulSet", "todo-chatbot-postgres")
    assert ("user", fe_svc) in edges  # NodePort: reachable from outside
    assert ("user", diagram.node_id("Service", "todo-chatbot-backend")) not in edges
    assert (fe_svc, fe) in edges
    be_svc = diagram.node_id("Service", "todo-chatbot-backend")
    pg_svc = diagram.node_id("Service", "todo-chatbot-postgres")
    # NetworkPolicy ingress rules, drawn through the target's Service
    assert (fe, be_svc) in edges and (be, pg_svc) in edges and (be_svc, be) in edges
    assert (fe, be) not in edges and (pg, be) not in edges
    assert (be, diagram.node_id("Secret", "todo-chatbot-backend")) in edges
    assert (be, diagram.node_id("ConfigMap", "todo-chatbot-config")) in edges
    assert (pg, diagram.node_id("PersistentVolumeClaim", "data-todo-chatbot-postgres-0")) in edges


def test_mermaid_block_contents() -> None:
    text = diagram.mermaid(diagram.build_graph(recorded_objects()))
    assert text.startswith("flowchart TB\n")
    assert "Deployment todo-chatbot-frontend<br/>1/2 pods ready" in text
    assert "Deployment todo-chatbot-backend<br/>2/2 pods ready" in text
    assert 'deployment_todo_chatbot_frontend -->|":8000"| service_todo_chatbot_backend' in text
    assert "<br/>backend: frontend -> backend :8000" in text  # the policy note
    assert "keys: AUTH_SECRET, DATABASE_URL" in text
    assert SECRET_IN_OBJECT not in text


def test_svg_is_rendered_by_graphviz(tmp_path: Path) -> None:
    require(diagram.dot_available(), "graphviz `dot`")
    path = diagram.render_svg(diagram.build_graph(recorded_objects()), tmp_path / "a.svg", "t")
    svg = path.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "todo&#45;chatbot&#45;backend" in svg or "todo-chatbot-backend" in svg
    assert SECRET_IN_OBJECT not in svg


# ---- the report --------------------------------------------------------------------------


def build(tmp_path: Path, gates: dict[str, GateResult | None] | None = None) -> tuple[dict, str]:
    settings = loaded_settings(tmp_path).settings
    images = {
        "backend": ImageRef("backend", "todo-backend", "abc123", "sha256:" + "1" * 64, 120_000_000,
                            40_000_000),
    }  # fmt: skip
    objects = recorded_objects()
    data = report.build_report(
        settings, objects, images, gates or {}, {"kind": "port-forward", "url": "", "detail": "x"},
        diagram.mermaid(diagram.build_graph(objects)), "architecture.svg", now=NOW,
    )  # fmt: skip
    return data, report.render_markdown(data, settings)


def test_markdown_tables(tmp_path: Path) -> None:
    verify = GateResult("verify", [Check.of("isolation-rest", True, "B sees 0 | of A's")],
                        details={"access": {"kind": "nodeport"}, "duration_s": 40,
                                 "counts": {"pass": 1}})  # fmt: skip
    aiops = GateResult("aiops", [Check("doctor", Verdict.FAIL, "x")],
                       finished_at="2026-01-02T11:59:00+00:00",
                       details={"findings": [
                           {"kind": "CrashLoop", "object": "Deployment/todo-chatbot-frontend",
                            "evidence": "exit 1", "fix": "read logs"},
                           {"kind": "CrashLoop", "object": "Pod/gone-since",
                            "evidence": "exit 2", "fix": "read logs"}]})  # fmt: skip
    data, md = build(tmp_path, {"deploy": None, "verify": verify, "aiops": aiops})
    assert "| kind | name | component | ready | replicas | status | age |" in md
    assert "| Deployment | todo-chatbot-frontend | frontend | 1/2 | 2 | not ready | 1h |" in md
    assert (
        "| Secret | todo-chatbot-backend | backend |" in md
        and "keys: AUTH_SECRET, DATABASE_URL" in md
    )
    assert "| backend | `todo-backend:abc123` | `sha256:111111111111` | 120.0 MB | 40.0 MB |" in md
    assert "### deploy: not run" in md
    assert "### verify: passed" in md
    assert "| isolation-rest | pass | B sees 0 \\| of A's |" in md  # pipes escaped
    # only findings about objects that exist now, each with when it was observed
    assert (
        "| CrashLoop | Deployment/todo-chatbot-frontend | exit 1 | read logs | "
        "2026-01-02T11:59:00+00:00 |"
    ) in md
    assert "Pod/gone-since" not in md
    assert "```mermaid\nflowchart TB" in md and "![architecture diagram](architecture.svg)" in md
    assert "kubectl port-forward -n todo svc/todo-chatbot-frontend 8080:80" in md
    assert data["object_counts"]["Deployment"] == 2 and len(data["objects"]) == 12


def test_no_secret_values_in_report(tmp_path: Path) -> None:
    data, md = build(tmp_path)
    blob = md + json.dumps(data)
    assert SECRET_IN_OBJECT not in blob
    assert base64.b64encode(SECRET_IN_OBJECT.encode()).decode() not in blob


def test_find_secrets_flags_long_values_only() -> None:
    texts = {"r.md": "token abcdefgh1234 and todo"}
    assert report.find_secrets(texts, ["abcdefgh1234", "todo"]) == [
        "r.md contains secret value #1 of the settings"
    ]


# ---- the stage with a recorded cluster ---------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound here and never listening, so
    nothing else can take it while the test runs (unlike a fixed port such as 31080)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


class RecordedKube:
    """Answers the calls the docs stage makes from recorded objects."""

    context = ""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def list_owned(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        assert "app.kubernetes.io/instance=todo-chatbot" in selector
        return [o for o in self.objects if o["kind"] != "PersistentVolumeClaim"]

    def list(self, api_version: str, kind: str, namespace: str = "", selector: str = "") -> list:
        if kind == "Node":
            return [{"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}]
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict | None:
        return next((o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name),
                    None)  # fmt: skip


def test_stage_writes_report_svg_and_json(tmp_path: Path, closed_port: int) -> None:
    loaded = loaded_settings(tmp_path)
    save_images(
        loaded.state_dir, {"frontend": ImageRef("frontend", "todo-frontend", "t1", "sha256:2")}
    )
    scope = scopes_for(loaded.settings)["deploy"]
    save(
        loaded.state_dir,
        GateResult("deploy", [Check.of("objects applied", True, "16 objects")], scope=scope),
    )
    save(
        loaded.state_dir,
        GateResult(
            "verify",
            [Check.of("persistence", True, "of another")],
            scope=scope.replace("/todo/", "/elsewhere/"),
        ),
    )
    out = tmp_path / "docs"
    result = docs_stage.run(loaded, kube=RecordedKube(recorded_objects(closed_port)), out_dir=out,
                            log=lambda _: None)  # fmt: skip
    verdicts = {c.name: c.verdict for c in result.checks}
    assert verdicts["live objects read"] is Verdict.PASS
    assert verdicts["report written"] is Verdict.PASS
    assert verdicts["no secret values"] is Verdict.PASS
    assert verdicts["diagram written"] is (
        Verdict.PASS if diagram.dot_available() else Verdict.WARN
    )
    md = (out / "deployment-report.md").read_text()
    data = json.loads((out / "deployment-report.json").read_text())
    assert "data-todo-chatbot-postgres-0" in md  # the claim came from the StatefulSet's template
    assert "### deploy: passed" in md and "| objects applied | pass | 16 objects |" in md
    assert "of another" not in md  # a gate of another namespace is not this deployment's
    # The NodePort on 127.0.0.1 does not answer: the report says to port-forward
    assert data["access"]["kind"] == "port-forward"
    if diagram.dot_available():
        assert (out / "architecture.svg").read_text().count("<svg") == 1


def test_stage_without_dot_warns_and_keeps_mermaid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setattr(diagram, "dot_available", lambda: False)
    out = tmp_path / "docs"
    result = docs_stage.run(loaded_settings(tmp_path), kube=RecordedKube(recorded_objects(closed_port)),
                            out_dir=out, log=lambda _: None)  # fmt: skip
    check = next(c for c in result.checks if c.name == "diagram written")
    assert check.verdict is Verdict.WARN and "Mermaid block only" in check.evidence
    assert result.passed
    md = (out / "deployment-report.md").read_text()
    assert "```mermaid" in md and "![architecture diagram]" not in md
    assert not (out / "architecture.svg").exists()


def test_stage_fails_and_scrubs_when_a_secret_leaks(tmp_path: Path, closed_port: int) -> None:
    loaded = loaded_settings(tmp_path)
    leaked = loaded.settings.auth_secret.get_secret_value()
    save(
        loaded.state_dir,
        GateResult(
            "deploy",
            [Check.of("bad", True, f"token={leaked}")],
            scope=scopes_for(loaded.settings)["deploy"],
        ),
    )
    out = tmp_path / "docs"
    result = docs_stage.run(loaded, kube=RecordedKube(recorded_objects(closed_port)), out_dir=out,
                            log=lambda _: None)  # fmt: skip
    check = next(c for c in result.checks if c.name == "no secret values")
    assert check.verdict is Verdict.FAIL
    assert "deployment-report.md contains secret value" in check.evidence
    assert leaked not in check.evidence
    for name in ("deployment-report.md", "deployment-report.json"):
        assert leaked not in (out / name).read_text()


def test_stage_with_nothing_deployed_fails(tmp_path: Path) -> None:
    result = docs_stage.run(loaded_settings(tmp_path), kube=RecordedKube([]),
                            out_dir=tmp_path / "docs", log=lambda _: None)  # fmt: skip
    check = next(c for c in result.checks if c.name == "live objects read")
    assert check.verdict is Verdict.FAIL and not result.passed
