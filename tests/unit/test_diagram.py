"""The architecture diagram's layout (issue 22, item 7): tiers along the request path,
at most 2:1, legible at 1200 px wide, measured on the PNG `dot` renders."""

from __future__ import annotations

import base64
import copy
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require
from todo_deploy.stages.docs import diagram

ROOT = Path(__file__).resolve().parents[2]
FIT_WIDTH_PX = 1200  # the page width
MIN_GLYPH_PX = 9.0  # the smallest text (edge labels) at that width, in px per em
MAX_ASPECT = 2.0  # width : height


def _live(obj: dict[str, Any]) -> dict[str, Any]:
    """A manifest as the API returns it: a uid, and the status a healthy rollout shows."""
    obj = copy.deepcopy(obj)
    obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "StatefulSet"):
        want = spec.get("replicas", 1)
        obj["status"] = {"replicas": want, "readyReplicas": want}
    elif obj["kind"] == "Job":
        obj["status"] = {"succeeded": 1}
    elif obj["kind"] == "Service" and spec.get("type") == "NodePort":
        for port in spec.get("ports") or []:
            port["nodePort"] = 31080
    return obj


def _secret(name: str, *keys: str) -> dict[str, Any]:
    value = base64.b64encode(b"not-shown").decode()
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "todo", "uid": f"uid-{name}"},
            "data": dict.fromkeys(keys, value)}  # fmt: skip


def live_objects(*, with_database: bool = True) -> list[dict[str, Any]]:
    """What `collect_objects` reads after `inv deploy` of the project's own manifests
    (k8s/, generated from the chart's defaults): the same list the docs stage passes."""
    objects = [
        _live(doc)
        for path in sorted((ROOT / "k8s").glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") not in ("Namespace",)
    ]
    objects += [
        _secret("todo-chatbot-backend", "AUTH_SECRET", "DATABASE_URL"),
        _secret("todo-chatbot-frontend", "SESSION_SECRET"),
        _secret("todo-chatbot-postgres", "POSTGRES_PASSWORD"),
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "data-todo-chatbot-postgres-0", "namespace": "todo", "uid": "uid-pvc"},
         "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}},
    ]  # fmt: skip
    if not with_database:
        objects = [
            o
            for o in objects
            if o["kind"] != "PersistentVolumeClaim" and "postgres" not in o["metadata"]["name"]
        ]
    return objects


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (bytes 16-24)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def layout_points(graph: diagram.Graph) -> tuple[float, float]:
    """The layout's width and height in points, from `dot -Tplain` (first line:
    `graph <scale> <width in> <height in>`)."""
    first = diagram.dot_source(graph, "todo-chatbot in todo").pipe(format="plain").split(b"\n")[0]
    _, _, width, height = first.decode().split()[:4]
    return float(width) * 72, float(height) * 72


@pytest.fixture(scope="module")
def rendered() -> tuple[diagram.Graph, bytes]:
    require(diagram.dot_available(), "graphviz `dot`")
    graph = diagram.build_graph(live_objects(), "nodeport", "todo-chatbot-frontend")
    return graph, diagram.dot_source(graph, "todo-chatbot in todo").pipe(format="png")


def test_rendered_png_is_at_most_two_to_one(rendered: tuple[diagram.Graph, bytes]) -> None:
    _, png = rendered
    width, height = png_size(png)
    assert width / height <= MAX_ASPECT, f"{width}x{height}"


def test_smallest_text_stays_legible_at_1200_px(rendered: tuple[diagram.Graph, bytes]) -> None:
    """A glyph of `fontsize` points is fontsize * (PNG px / layout pt) px in the PNG
    (the renderer's dpi, measured rather than assumed); fitting the PNG into 1200 px
    scales that by 1200 / width (never up: a narrower picture is shown as it is)."""
    graph, png = rendered
    width_px, _ = png_size(png)
    width_pt, _ = layout_points(graph)
    px_per_pt = width_px / width_pt
    fit = min(1.0, FIT_WIDTH_PX / width_px)
    smallest = min(diagram.EDGE_FONT, diagram.NODE_FONT)
    assert smallest * px_per_pt * fit >= MIN_GLYPH_PX, (width_px, px_per_pt)


def test_request_path_passes_through_the_backend_service() -> None:
    graph = diagram.build_graph(live_objects(), "nodeport", "todo-chatbot-frontend")
    fe = diagram.node_id("Deployment", "todo-chatbot-frontend")
    be_svc = diagram.node_id("Service", "todo-chatbot-backend")
    be = diagram.node_id("Deployment", "todo-chatbot-backend")
    edges = {(e.src, e.dst): e for e in graph.edges}
    assert (fe, be_svc) in edges and (be_svc, be) in edges
    assert (fe, be) not in edges
    for key in ((fe, be_svc), (be_svc, be)):
        assert "NetworkPolicy" not in edges[key].label and "todo-chatbot" not in edges[key].label
    assert edges[(fe, be_svc)].label == ":8000"
    # the policy is an annotation: the edge's tooltip and the note
    assert "todo-chatbot-backend" not in edges[(fe, be_svc)].label
    assert edges[(fe, be_svc)].note.startswith("NetworkPolicy backend: frontend -> backend")
    assert "backend: frontend -> backend :8000" in graph.policies


def test_nodes_fall_in_their_tiers() -> None:
    graph = diagram.build_graph(live_objects(), "nodeport", "todo-chatbot-frontend")
    tiers = {tier: {n.id for n in nodes} for tier, nodes in graph.tiers().items()}
    assert tiers["edge"] == {"user", diagram.node_id("Service", "todo-chatbot-frontend")}
    assert {
        diagram.node_id("Deployment", "todo-chatbot-frontend"),
        diagram.node_id("Service", "todo-chatbot-backend"),
        diagram.node_id("Deployment", "todo-chatbot-backend"),
        diagram.node_id("Job", "todo-chatbot-migrate-settothebuil"),
    } <= tiers["app"]
    assert tiers["data"] == {
        diagram.node_id("Service", "todo-chatbot-postgres"),
        diagram.node_id("StatefulSet", "todo-chatbot-postgres"),
        diagram.node_id("PersistentVolumeClaim", "data-todo-chatbot-postgres-0"),
        diagram.node_id("Secret", "todo-chatbot-postgres"),  # only the database uses it
    }


def test_port_forward_enters_through_the_cluster_ip_service() -> None:
    objects = live_objects()
    for obj in objects:
        if obj["kind"] == "Service" and obj["metadata"]["name"] == "todo-chatbot-frontend":
            obj["spec"]["type"] = "ClusterIP"
    graph = diagram.build_graph(objects, "port-forward", "todo-chatbot-frontend")
    fe_svc = diagram.node_id("Service", "todo-chatbot-frontend")
    edge = next(e for e in graph.edges if e.src == "user")
    assert (edge.dst, edge.label) == (fe_svc, "http via kubectl port-forward")
    assert [n.id for n in graph.tiers()["edge"]] == ["user", fe_svc]


def test_external_database_sits_in_the_data_tier() -> None:
    graph = diagram.build_graph(
        live_objects(with_database=False), "nodeport", "todo-chatbot-frontend"
    )
    be = diagram.node_id("Deployment", "todo-chatbot-backend")
    assert [n.id for n in graph.tiers()["data"]] == [diagram.EXTERNAL_DB]
    assert (be, diagram.EXTERNAL_DB) in {(e.src, e.dst) for e in graph.edges}


def test_request_path_without_network_policies_comes_from_the_config_url() -> None:
    objects = [o for o in live_objects() if o["kind"] != "NetworkPolicy"]
    graph = diagram.build_graph(objects, "nodeport", "todo-chatbot-frontend")
    fe = diagram.node_id("Deployment", "todo-chatbot-frontend")
    be = diagram.node_id("Deployment", "todo-chatbot-backend")
    be_svc = diagram.node_id("Service", "todo-chatbot-backend")
    edges = {(e.src, e.dst) for e in graph.edges}
    assert (fe, be_svc) in edges and (be, be_svc) not in edges
    assert not graph.policies


def test_mermaid_has_the_same_tiers() -> None:
    graph = diagram.build_graph(live_objects(), "nodeport", "todo-chatbot-frontend")
    text = diagram.mermaid(graph)
    assert text.startswith("flowchart TB\n")
    blocks = text.split("    subgraph ")[1:]
    assert [b.split("[", 1)[0] for b in blocks] == ["tier_edge", "tier_app", "tier_data"]
    for block, (tier, nodes) in zip(blocks, graph.tiers().items(), strict=True):
        body = block.split("    end", 1)[0]
        assert all(f"        {n.id}" in body for n in nodes), tier
    fe = diagram.node_id("Deployment", "todo-chatbot-frontend")
    assert f'{fe} -->|":8000"| {diagram.node_id("Service", "todo-chatbot-backend")}' in text
    assert "NetworkPolicies (ingress)<br/>default-deny: ingress denied unless allowed below" in text


def test_png_written_for_a_look(rendered: tuple[diagram.Graph, bytes], tmp_path: Path) -> None:
    """The PNG is a picture (not an empty canvas): the title and tiers are in the SVG twin."""
    graph, png = rendered
    width, height = png_size(png)
    assert width > 300 and height > 300
    svg = diagram.dot_source(graph, "todo-chatbot in todo").pipe(format="svg").decode()
    for title in diagram.TIER_TITLES.values():
        assert f">{title}<" in svg
