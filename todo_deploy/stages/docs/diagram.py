"""The architecture diagram, generated from the live objects (the API's JSON).

One graph model, two renderings: a Mermaid `flowchart` for the Markdown report
and an SVG through graphviz (`dot`). Nodes: Services, Deployments/StatefulSets
(with their ready pod count), Jobs, Secrets and ConfigMaps (names only), PVCs.
Edges: Service -> workload (its selector), NetworkPolicy ingress rules
(source workload -> target workload, with ports), workload -> the Secrets,
ConfigMaps and claims its pod template uses.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    name: str
    label: str


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""
    style: str = "solid"  # solid: traffic; dotted: uses (config, secret, storage)


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, node: Node) -> None:
        self.nodes.setdefault(node.id, node)

    def link(self, edge: Edge) -> None:
        if edge.src in self.nodes and edge.dst in self.nodes and edge not in self.edges:
            self.edges.append(edge)


def node_id(kind: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{kind}_{name}").lower()


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _template(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") == "Job":
        return (obj.get("spec") or {}).get("template") or {}
    return (obj.get("spec") or {}).get("template") or {}


def _pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    return ((_template(obj).get("metadata") or {}).get("labels")) or {}


def _ready(obj: dict[str, Any]) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if obj.get("kind") == "Job":
        return "succeeded" if status.get("succeeded") else "not complete"
    return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)} pods ready"


def _service_label(svc: dict[str, Any]) -> str:
    spec = svc.get("spec") or {}
    ports = ", ".join(
        f":{p.get('port')}" + (f" (node {p['nodePort']})" if p.get("nodePort") else "")
        for p in spec.get("ports") or []
    )
    return f"Service {svc['metadata']['name']}\\n{spec.get('type', 'ClusterIP')} {ports}".strip()


def _uses(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of the Secrets, ConfigMaps and claims the pod template uses."""
    spec = _template(obj).get("spec") or {}
    found: list[tuple[str, str]] = []
    containers = list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
    for c in containers:
        for src in c.get("envFrom") or []:
            if (src.get("secretRef") or {}).get("name"):
                found.append(("Secret", src["secretRef"]["name"]))
            if (src.get("configMapRef") or {}).get("name"):
                found.append(("ConfigMap", src["configMapRef"]["name"]))
        for env in c.get("env") or []:
            ref = env.get("valueFrom") or {}
            if (ref.get("secretKeyRef") or {}).get("name"):
                found.append(("Secret", ref["secretKeyRef"]["name"]))
            if (ref.get("configMapKeyRef") or {}).get("name"):
                found.append(("ConfigMap", ref["configMapKeyRef"]["name"]))
    for volume in spec.get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName"):
            found.append(("Secret", volume["secret"]["secretName"]))
        if (volume.get("configMap") or {}).get("name"):
            found.append(("ConfigMap", volume["configMap"]["name"]))
        if (volume.get("persistentVolumeClaim") or {}).get("claimName"):
            found.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    if obj.get("kind") == "StatefulSet":
        for tpl in (obj.get("spec") or {}).get("volumeClaimTemplates") or []:
            prefix = f"{tpl['metadata']['name']}-{obj['metadata']['name']}-"
            found.append(("PersistentVolumeClaim*", prefix))
    return list(dict.fromkeys(found))


def build_graph(objects: list[dict[str, Any]]) -> Graph:
    """The architecture graph of the given live objects."""
    graph = Graph()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind", ""), []).append(obj)
    workloads = [o for k in WORKLOAD_KINDS for o in by_kind.get(k, [])]

    graph.add(Node("user", "User", "user", "Browser"))
    for svc in by_kind.get("Service", []):
        name = svc["metadata"]["name"]
        graph.add(Node(node_id("Service", name), "Service", name, _service_label(svc)))
    for obj in workloads:
        name, kind = obj["metadata"]["name"], obj["kind"]
        graph.add(Node(node_id(kind, name), kind, name, f"{kind} {name}\\n{_ready(obj)}"))
    for kind in ("Secret", "ConfigMap", "PersistentVolumeClaim"):
        for obj in by_kind.get(kind, []):
            name = obj["metadata"]["name"]
            extra = ""
            if kind == "Secret":
                extra = "\\nkeys: " + ", ".join(sorted((obj.get("data") or {}).keys()))
            elif kind == "PersistentVolumeClaim":
                status = obj.get("status") or {}
                size = (status.get("capacity") or {}).get("storage", "")
                extra = f"\\n{status.get('phase', '')} {size}".rstrip()
            graph.add(Node(node_id(kind, name), kind, name, f"{kind} {name}{extra}"))

    for svc in by_kind.get("Service", []):
        spec = svc.get("spec") or {}
        sid = node_id("Service", svc["metadata"]["name"])
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            graph.link(Edge("user", sid, "http"))
        for obj in workloads:
            if obj["kind"] != "Job" and _matches(spec.get("selector") or {}, _pod_labels(obj)):
                port = next(iter(spec.get("ports") or []), {})
                target = port.get("targetPort", port.get("port", ""))
                graph.link(Edge(sid, node_id(obj["kind"], obj["metadata"]["name"]), f"{target}"))

    for policy in by_kind.get("NetworkPolicy", []):
        spec = policy.get("spec") or {}
        target_sel = (spec.get("podSelector") or {}).get("matchLabels") or {}
        targets = [o for o in workloads if _matches(target_sel, _pod_labels(o))]
        for rule in spec.get("ingress") or []:
            ports = ",".join(str(p.get("port", "")) for p in rule.get("ports") or [])
            for peer in rule.get("from") or []:
                sel = (peer.get("podSelector") or {}).get("matchLabels") or {}
                for src in (o for o in workloads if _matches(sel, _pod_labels(o))):
                    for dst in targets:
                        graph.link(
                            Edge(
                                node_id(src["kind"], src["metadata"]["name"]),
                                node_id(dst["kind"], dst["metadata"]["name"]),
                                f"NetworkPolicy {policy['metadata']['name']}"
                                + (f" :{ports}" if ports else ""),
                            )
                        )

    claims = [o["metadata"]["name"] for o in by_kind.get("PersistentVolumeClaim", [])]
    for obj in workloads:
        wid = node_id(obj["kind"], obj["metadata"]["name"])
        for kind, name in _uses(obj):
            if kind == "PersistentVolumeClaim*":
                for claim in claims:
                    if claim.startswith(name):
                        graph.link(Edge(wid, node_id("PersistentVolumeClaim", claim), "", "dotted"))
                continue
            graph.link(Edge(wid, node_id(kind, name), "", "dotted"))
    return graph


# ---- Mermaid --------------------------------------------------------------------------

_MERMAID_SHAPE = {
    "User": ('(["', '"])'),
    "Service": ('[/"', '"/]'),
    "Deployment": ('["', '"]'),
    "StatefulSet": ('[("', '")]'),
    "Job": ('[["', '"]]'),
    "Secret": ('{{"', '"}}'),
    "ConfigMap": ('>"', '"]'),
    "PersistentVolumeClaim": ('[("', '")]'),
}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'").replace("\\n", "<br/>")


def mermaid(graph: Graph) -> str:
    """A Mermaid `flowchart LR` (no fences)."""
    lines = ["flowchart LR"]
    for node in graph.nodes.values():
        left, right = _MERMAID_SHAPE.get(node.kind, ('["', '"]'))
        lines.append(f"    {node.id}{left}{_mermaid_text(node.label)}{right}")
    for edge in graph.edges:
        arrow = "-.->" if edge.style == "dotted" else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.src} {arrow}{label} {edge.dst}")
    return "\n".join(lines)


# ---- graphviz -----------------------------------------------------------------------

_DOT_SHAPE = {
    "User": ("oval", "#ffffff"),
    "Service": ("parallelogram", "#dbeafe"),
    "Deployment": ("box", "#dcfce7"),
    "StatefulSet": ("box3d", "#fef9c3"),
    "Job": ("component", "#f3e8ff"),
    "Secret": ("hexagon", "#fee2e2"),
    "ConfigMap": ("note", "#f1f5f9"),
    "PersistentVolumeClaim": ("cylinder", "#fde68a"),
}


def dot_available() -> bool:
    return shutil.which("dot") is not None


def dot_source(graph: Graph, title: str = "") -> Any:
    """A graphviz.Digraph of the graph (not yet rendered)."""
    import graphviz

    dot = graphviz.Digraph("architecture", format="svg")
    dot.attr(rankdir="LR", fontname="Helvetica", labelloc="t", label=title)
    dot.attr("node", style="filled", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    for node in graph.nodes.values():
        shape, color = _DOT_SHAPE.get(node.kind, ("box", "#ffffff"))
        dot.node(node.id, node.label.replace("\\n", "\n"), shape=shape, fillcolor=color)
    for edge in graph.edges:
        dot.edge(edge.src, edge.dst, label=edge.label, style=edge.style)
    return dot


def render_svg(graph: Graph, path: Path, title: str = "") -> Path:
    """Render the graph to `path` (an .svg) with graphviz's `dot`."""
    dot = dot_source(graph, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    svg = dot.pipe(format="svg")
    path.write_bytes(svg)
    return path
