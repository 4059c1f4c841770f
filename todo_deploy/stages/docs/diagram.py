"""The architecture diagram, generated from the live objects (the API's JSON).

One graph model, two renderings: a Mermaid `flowchart TB` for the Markdown report
and an SVG through graphviz (`dot`), both drawn top to bottom in three tiers along
the request path: edge (the browser and the Service it reaches), app (Deployments,
Jobs, their Services, Secrets and ConfigMaps), data (the database StatefulSet, its
Service and claims, or the external database).

Nodes: Services, Deployments/StatefulSets (with their ready pod count), Jobs,
Secrets and ConfigMaps (names only), PVCs. Edges: user -> the Service it reaches
(NodePort, LoadBalancer or a port-forward), Service -> workload (its selector),
workload -> the Service of the workload a NetworkPolicy ingress rule lets it reach
(or a ConfigMap URL names), workload -> the Secrets, ConfigMaps and claims its pod
template uses. NetworkPolicies are annotations (a note, and the edge's tooltip),
never the label of a request edge.
"""

from __future__ import annotations

import itertools
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
TIERS = ("edge", "app", "data")
TIER_TITLES = {
    "edge": "edge: where the user comes in",
    "app": "app",
    "data": "data",
}
POLICY_NOTE = "netpol_note"
EXTERNAL_DB = "external_database"
PORT_FORWARD = "port-forward"


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
    note: str = ""  # the NetworkPolicy that admits this traffic: a tooltip, not the label


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)  # one line per NetworkPolicy

    def add(self, node: Node) -> None:
        self.nodes.setdefault(node.id, node)

    def link(self, edge: Edge) -> None:
        known = edge.src in self.nodes and edge.dst in self.nodes
        if known and not any((e.src, e.dst) == (edge.src, edge.dst) for e in self.edges):
            self.edges.append(edge)

    def tiers(self) -> dict[str, list[Node]]:
        """The nodes of each tier, in insertion order (see `tier_of`)."""
        grouped: dict[str, list[Node]] = {tier: [] for tier in TIERS}
        for node in self.nodes.values():
            grouped[tier_of(self, node)].append(node)
        return grouped


def tier_of(graph: Graph, node: Node) -> str:
    """edge: the user and the Services the user reaches; data: StatefulSets, the
    Services in front of them, claims and the external database; app: the rest."""
    if node.kind == "User" or any(e.src == "user" and e.dst == node.id for e in graph.edges):
        return "edge"
    if node.kind in ("StatefulSet", "PersistentVolumeClaim", "ExternalDatabase"):
        return "data"
    if node.kind == "Service":
        targets = [graph.nodes[e.dst] for e in graph.edges if e.src == node.id]
        if targets and all(t.kind == "StatefulSet" for t in targets):
            return "data"
    if node.kind in ("Secret", "ConfigMap"):
        users = [graph.nodes[e.src] for e in graph.edges if e.dst == node.id]
        if users and all(u.kind == "StatefulSet" for u in users):
            return "data"
    return "app"


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


def _add_nodes(graph: Graph, by_kind: dict[str, list[dict[str, Any]]], workloads: list) -> None:
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


def _link_services(graph: Graph, by_kind: dict, workloads: list, access: str, entry: str) -> dict:
    """user -> exposed Services, Service -> the workloads it selects. Returns the
    Service (id, port) in front of each workload id."""
    front: dict[str, tuple[str, str]] = {}
    for svc in by_kind.get("Service", []):
        spec = svc.get("spec") or {}
        name = svc["metadata"]["name"]
        sid = node_id("Service", name)
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            graph.link(Edge("user", sid, "http"))
        elif access == PORT_FORWARD and name == entry:
            graph.link(Edge("user", sid, "http via kubectl port-forward"))
        port: dict[str, Any] = next(iter(spec.get("ports") or []), {})
        for obj in workloads:
            if obj["kind"] != "Job" and _matches(spec.get("selector") or {}, _pod_labels(obj)):
                wid = node_id(obj["kind"], obj["metadata"]["name"])
                graph.link(Edge(sid, wid, f"{port.get('targetPort', port.get('port', ''))}"))
                front.setdefault(wid, (sid, str(port.get("port", ""))))
    return front


def _short(name: str, release: str) -> str:
    return name.removeprefix(f"{release}-") if release and name != release else name


def _link_policies(graph: Graph, by_kind: dict, workloads: list, front: dict) -> None:
    """Each NetworkPolicy ingress rule: source workload -> the target's Service (or the
    target itself when no Service selects it), the policy named in the note only."""
    for policy in by_kind.get("NetworkPolicy", []):
        pname = policy["metadata"]["name"]
        release = ((policy["metadata"].get("labels") or {}).get("app.kubernetes.io/instance")) or ""
        spec = policy.get("spec") or {}
        target_sel = (spec.get("podSelector") or {}).get("matchLabels") or {}
        targets = [o for o in workloads if _matches(target_sel, _pod_labels(o))]
        rules = spec.get("ingress") or []
        if not target_sel and not rules:
            graph.policies.append(f"{_short(pname, release)}: ingress denied unless allowed below")
            continue
        for rule in rules:
            ports = ",".join(str(p.get("port", "")) for p in rule.get("ports") or [])
            sources = [
                o
                for peer in rule.get("from") or []
                for o in workloads
                if _matches(
                    ((peer.get("podSelector") or {}).get("matchLabels")) or {}, _pod_labels(o)
                )
            ]
            src_names = ", ".join(_short(o["metadata"]["name"], release) for o in sources)
            src_names = src_names or ("selected pods" if rule.get("from") else "anywhere")
            dst_names = ", ".join(_short(o["metadata"]["name"], release) for o in targets) or "-"
            note = f"{_short(pname, release)}: {src_names} -> {dst_names}" + (
                f" :{ports}" if ports else ""
            )
            graph.policies.append(note)
            for src in sources:
                for dst in targets:
                    _link_request(graph, src, dst, front, f"NetworkPolicy {note}")


def _link_request(graph: Graph, src: dict, dst: dict, front: dict, note: str) -> None:
    sid = node_id(src["kind"], src["metadata"]["name"])
    did = node_id(dst["kind"], dst["metadata"]["name"])
    if did in front:
        service, port = front[did]
        graph.link(Edge(sid, service, f":{port}" if port else "", note=note))
    else:
        graph.link(Edge(sid, did, "", note=note))


def _link_config_urls(graph: Graph, by_kind: dict, workloads: list, front: dict) -> None:
    """workload -> a Service its ConfigMap names in a URL (http://backend:8000), so the
    request path is drawn even where no NetworkPolicy is deployed."""
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    config = {c["metadata"]["name"]: c.get("data") or {} for c in by_kind.get("ConfigMap", [])}
    for obj in workloads:
        wid = node_id(obj["kind"], obj["metadata"]["name"])
        for kind, name in _uses(obj):
            for value in (config.get(name) or {}).values() if kind == "ConfigMap" else ():
                for host, port in re.findall(r"//([a-z0-9-]+)(?::(\d+))?", str(value)):
                    sid = node_id("Service", host)
                    if host in services and front.get(wid, ("",))[0] != sid:
                        graph.link(Edge(wid, sid, f":{port}" if port else ""))


def _link_uses(graph: Graph, by_kind: dict, workloads: list) -> None:
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


def _link_external_database(graph: Graph, by_kind: dict, workloads: list) -> None:
    """No database deployed, but a Secret carries DATABASE_URL: the workloads that use
    it reach a database outside the cluster (DATABASE_MODE=external)."""
    if by_kind.get("StatefulSet"):
        return
    holders = {
        s["metadata"]["name"]
        for s in by_kind.get("Secret", [])
        if "DATABASE_URL" in (s.get("data") or {})
    }
    users = [o for o in workloads if any(k == "Secret" and n in holders for k, n in _uses(o))]
    if not users:
        return
    graph.add(
        Node(EXTERNAL_DB, "ExternalDatabase", "database", "external PostgreSQL\\n(DATABASE_URL)")
    )
    for obj in users:
        graph.link(Edge(node_id(obj["kind"], obj["metadata"]["name"]), EXTERNAL_DB, "sql"))


def build_graph(objects: list[dict[str, Any]], access: str = "", entry: str = "") -> Graph:
    """The architecture graph of the given live objects. `access` is how the user
    reaches the app (an AccessPlan kind) and `entry` the frontend Service's name: with a
    port-forward the user reaches that (ClusterIP) Service through kubectl."""
    graph = Graph()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind", ""), []).append(obj)
    workloads = [o for k in WORKLOAD_KINDS for o in by_kind.get(k, [])]
    _add_nodes(graph, by_kind, workloads)
    front = _link_services(graph, by_kind, workloads, access, entry)
    _link_policies(graph, by_kind, workloads, front)
    if not graph.policies:  # the policies are the authority; URLs would add e.g. Job -> backend
        _link_config_urls(graph, by_kind, workloads, front)
    _link_external_database(graph, by_kind, workloads)
    _link_uses(graph, by_kind, workloads)
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
    "ExternalDatabase": ('[("', '")]'),
}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'").replace("\\n", "<br/>")


def _policy_note(graph: Graph) -> str:
    return "\\n".join(["NetworkPolicies (ingress)", *graph.policies])


def mermaid(graph: Graph) -> str:
    """A Mermaid `flowchart TB` (no fences), one subgraph per tier."""
    lines = ["flowchart TB"]
    for tier, nodes in graph.tiers().items():
        lines.append(f'    subgraph tier_{tier}["{TIER_TITLES[tier]}"]')
        for node in nodes:
            left, right = _MERMAID_SHAPE.get(node.kind, ('["', '"]'))
            lines.append(f"        {node.id}{left}{_mermaid_text(node.label)}{right}")
        if tier == "app" and graph.policies:
            lines.append(f'        {POLICY_NOTE}>"{_mermaid_text(_policy_note(graph))}"]')
        lines.append("    end")
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
    "ExternalDatabase": ("cylinder", "#fef9c3"),
}
# Point sizes: at most 2:1 and these sizes keep the smallest text (edge labels) at >= 9
# px when the PNG is fitted to 1200 px wide (tests/unit/test_diagram.py measures it).
NODE_FONT = 12
EDGE_FONT = 10
_TIER_FILL = {"edge": "#f8fafc", "app": "#f0fdf4", "data": "#fffbeb"}


def dot_available() -> bool:
    return shutil.which("dot") is not None


def dot_source(graph: Graph, title: str = "") -> Any:
    """A graphviz.Digraph of the graph (not yet rendered): top to bottom, one cluster per tier."""
    import graphviz

    dot = graphviz.Digraph("architecture", format="svg")
    dot.attr(rankdir="TB", fontname="Helvetica", labelloc="t", label=title, newrank="true")
    dot.attr(nodesep="0.35", ranksep="0.45", fontsize=str(NODE_FONT + 2))
    dot.attr("node", style="filled", fontname="Helvetica", fontsize=str(NODE_FONT))
    dot.attr("edge", fontname="Helvetica", fontsize=str(EDGE_FONT))
    for tier, nodes in graph.tiers().items():
        with dot.subgraph(name=f"cluster_{tier}") as sub:
            sub.attr(label=TIER_TITLES[tier], style="rounded,filled", fillcolor=_TIER_FILL[tier],
                     color="#94a3b8", fontsize=str(NODE_FONT + 1), labeljust="l")  # fmt: skip
            for node in nodes:
                shape, color = _DOT_SHAPE.get(node.kind, ("box", "#ffffff"))
                sub.node(node.id, node.label.replace("\\n", "\n"), shape=shape, fillcolor=color)
            if tier == "app" and graph.policies:
                sub.node(POLICY_NOTE, _policy_note(graph).replace("\\n", "\\l") + "\\l",
                         shape="note", fillcolor="#f1f5f9", fontsize=str(EDGE_FONT))  # fmt: skip
    _stack_tiers(dot, graph)
    for edge in graph.edges:
        extra = {"tooltip": edge.note, "penwidth": "1.6"} if edge.note else {}
        dot.edge(edge.src, edge.dst, label=edge.label, style=edge.style, **extra)
    return dot


def _stack_tiers(dot: Any, graph: Graph) -> None:
    """Stack the tiers top to bottom (clusters whose ranks overlap stand side by side):
    every node of a tier -> an invisible point -> every node of the next tier. Through one
    point, not node to node: dot counts invisible splines in the bounding box, and the
    all-pairs version drew the picture 2.4:1 with blank margins."""
    tiers = []
    for tier, nodes in graph.tiers().items():
        ids = [n.id for n in nodes] + ([POLICY_NOTE] if tier == "app" and graph.policies else [])
        if ids:
            tiers.append(ids)
    for k, (upper, lower) in enumerate(itertools.pairwise(tiers)):
        anchor = f"tier_gap_{k}"
        dot.node(anchor, "", shape="point", style="invis", width="0", height="0")
        for src in upper:
            dot.edge(src, anchor, style="invis", weight="0")
        for dst in lower:
            dot.edge(anchor, dst, style="invis", weight="0")


def render_svg(graph: Graph, path: Path, title: str = "") -> Path:
    """Render the graph to `path` (an .svg) with graphviz's `dot`."""
    dot = dot_source(graph, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    svg = dot.pipe(format="svg")
    path.write_bytes(svg)
    return path
