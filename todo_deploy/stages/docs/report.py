"""The deployment report: data gathered from live state, rendered to Markdown and JSON.

`collect_objects` reads the app's objects from the cluster; `build_report`
turns them (and the recorded images, gate results, AIOps findings and the
access path) into one JSON-able dict; `render_markdown` writes it for people.
Secret objects contribute their names and key names only, never values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from todo_deploy.chart.values import app_labels
from todo_deploy.gate_details import AiopsDetails, VerifyDetails
from todo_deploy.kube import label_selector

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings
    from todo_deploy.gates import GateResult
    from todo_deploy.kube import Kube

KIND_ORDER = (
    "Deployment", "StatefulSet", "Job", "Pod", "Service", "NetworkPolicy", "ConfigMap",
    "Secret", "PersistentVolumeClaim", "ServiceAccount", "PodDisruptionBudget",
    "HorizontalPodAutoscaler", "Ingress", "Role", "RoleBinding", "CronJob",
)  # fmt: skip


def app_selector(settings: Settings) -> str:
    return label_selector(app_labels(settings))


def collect_objects(kube: Kube, settings: Settings) -> list[dict[str, Any]]:
    """The app's live objects (its labels), plus the claims of its StatefulSets."""
    objects = kube.list_owned(settings.namespace, app_selector(settings))
    have = {(o["kind"], o["metadata"]["name"]) for o in objects}
    prefixes = [
        f"{tpl['metadata']['name']}-{o['metadata']['name']}-"
        for o in objects
        if o["kind"] == "StatefulSet"
        for tpl in (o.get("spec") or {}).get("volumeClaimTemplates") or []
    ]
    if prefixes:
        for pvc in kube.list("v1", "PersistentVolumeClaim", settings.namespace):
            name = pvc["metadata"]["name"]
            if ("PersistentVolumeClaim", name) not in have and name.startswith(tuple(prefixes)):
                objects.append(pvc)
    return objects


# ---- one row per object ------------------------------------------------------------------


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return ""
    try:
        then = datetime.fromisoformat(created)
    except ValueError:
        return ""
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def summarize(obj: dict[str, Any], now: datetime) -> dict[str, Any]:
    """kind, name, component, ready, replicas, status, age: no secret value ever."""
    kind = obj.get("kind", "")
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    row: dict[str, Any] = {
        "kind": kind,
        "name": meta.get("name", ""),
        "component": (meta.get("labels") or {}).get("app.kubernetes.io/component", ""),
        "ready": "",
        "replicas": "",
        "status": "",
        "age": _age(meta.get("creationTimestamp"), now),
        "uid": meta.get("uid", ""),
    }
    if kind in ("Deployment", "StatefulSet"):
        want = spec.get("replicas", 1)
        row["replicas"] = want
        row["ready"] = f"{status.get('readyReplicas', 0)}/{want}"
        row["status"] = "ready" if status.get("readyReplicas", 0) == want else "not ready"
    elif kind == "Pod":
        statuses = status.get("containerStatuses") or []
        ready = sum(1 for s in statuses if s.get("ready"))
        restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
        row["ready"] = f"{ready}/{len(spec.get('containers') or statuses)}"
        row["status"] = status.get("phase", "") + (f", {restarts} restarts" if restarts else "")
    elif kind == "Job":
        row["ready"] = "complete" if status.get("succeeded") else "not complete"
        row["status"] = f"succeeded {status.get('succeeded', 0)}, failed {status.get('failed', 0)}"
    elif kind == "Service":
        ports = ", ".join(
            f"{p.get('port')}->{p.get('targetPort', p.get('port'))}"
            + (f" (node {p['nodePort']})" if p.get("nodePort") else "")
            for p in spec.get("ports") or []
        )
        row["status"] = f"{spec.get('type', 'ClusterIP')} {ports}".strip()
    elif kind == "PersistentVolumeClaim":
        size = (status.get("capacity") or {}).get("storage", "")
        row["status"] = f"{status.get('phase', '')} {size}".strip()
    elif kind == "Secret":
        keys = sorted((obj.get("data") or {}).keys()) + sorted((obj.get("stringData") or {}).keys())
        row["status"] = "keys: " + ", ".join(keys)
    elif kind == "ConfigMap":
        row["status"] = "keys: " + ", ".join(sorted((obj.get("data") or {}).keys()))
    elif kind == "NetworkPolicy":
        selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
        row["status"] = "pods " + (
            ",".join(f"{k.split('/')[-1]}={v}" for k, v in sorted(selector.items())) or "(all)"
        )
    elif kind == "PodDisruptionBudget":
        row["status"] = f"minAvailable {spec.get('minAvailable', '-')}"
    return row


def _order(row: dict[str, Any]) -> tuple[int, str]:
    kind = row["kind"]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), row["name"])


def _aiops_tools(aiops: GateResult) -> list[dict[str, Any]]:
    return AiopsDetails.of(aiops).tools


def _verify_summary(verify: GateResult) -> dict[str, Any]:
    details = VerifyDetails.of(verify)
    return {
        "passed": verify.passed,
        "finished_at": verify.finished_at,
        "duration_s": details.duration_s,
        "access_kind": details.access.get("kind", "?"),
        "counts": details.counts,
        "checks": [{"name": c.name, "verdict": c.verdict.value, "evidence": c.evidence}
                   for c in verify.checks],
    }


def current_findings(aiops: GateResult, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The doctor's findings about objects that exist now, each with when it was observed."""
    live = {f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}" for o in objects}
    kept = []

    for finding in AiopsDetails.of(aiops).findings:
        subject = str(finding.get("object") or "")
        if subject and "/" in subject and subject not in live:
            continue  # a pod replaced since, a Job pruned: no longer true
        kept.append({**finding, "observed_at": finding.get("observed_at") or aiops.finished_at})
    return kept


# ---- the report -----------------------------------------------------------------------


def build_report(
    settings: Settings,
    objects: list[dict[str, Any]],
    images: dict[str, ImageRef],
    gates: dict[str, GateResult | None],
    access: dict[str, str],
    mermaid_text: str,
    svg_name: str | None,
    context: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything the report says, as JSON-able data."""
    now = now or datetime.now(UTC)
    rows = sorted((summarize(o, now) for o in objects), key=_order)
    aiops = gates.get("aiops")
    verify = gates.get("verify")
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "context": context or settings.context_name or "(current)",
        "cluster_provider": settings.cluster_provider,
        "namespace": settings.namespace,
        "release": settings.release_name,
        "database_mode": settings.database_mode,
        "llm_provider": settings.effective_llm_provider,
        "access": access,
        "objects": rows,
        "object_counts": _counts(rows),
        "images": [
            {
                "component": name,
                "ref": ref.ref,
                "image_id": ref.image_id,
                "size_bytes": ref.size_bytes,
                "added_bytes": ref.added_bytes,
            }
            for name, ref in sorted(images.items())
        ],
        "gates": {stage: (r.to_dict() if r else None) for stage, r in gates.items()},
        "verify": _verify_summary(verify) if verify else None,
        "aiops": {
            "passed": aiops.passed,
            "finished_at": aiops.finished_at,
            "findings": current_findings(aiops, objects),
            "tools": _aiops_tools(aiops),
        }
        if aiops
        else None,
        "diagram": {"svg": svg_name, "mermaid": mermaid_text},
    }


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return counts


def _cell(value: Any) -> str:
    text = str(value if value is not None else "")
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>") or " "


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size else "?"


def access_instructions(access: dict[str, str], settings: Settings) -> list[str]:
    kind, url = access.get("kind", ""), access.get("url", "")
    svc = f"{settings.release_name}-frontend"
    if url:
        how = {
            "minikube-service": f"`minikube service {svc} -n {settings.namespace} "
            f"-p {settings.minikube_profile}`",
            "nodeport": "the frontend Service's NodePort on the node's address",
            "loadbalancer": "the frontend Service's LoadBalancer address",
        }.get(kind, kind)
        return [f"Open **{url}** ({how}).", ""]
    return [
        "The frontend Service has no address reachable from here"
        + (f" ({access['detail']})" if access.get("detail") else "")
        + ". Forward a local port to it:",
        "",
        "```sh",
        f"kubectl port-forward -n {settings.namespace} svc/{svc} 8080:80",
        "```",
        "",
        "then open **http://localhost:8080**.",
        "",
    ]


def render_markdown(report: dict[str, Any], settings: Settings) -> str:
    lines = [
        "# Deployment report",
        "",
        (
            f"Generated {report['generated_at']} by `inv docs` from the live cluster "
            f"(context `{report['context']}`, provider `{report['cluster_provider']}`): release "
            f"`{report['release']}` in namespace `{report['namespace']}`, database "
            f"`{report['database_mode']}`, assistant `{report['llm_provider']}`."
        ),
        "",
        "## How to reach the app",
        "",
        *access_instructions(report["access"], settings),
        *_architecture_section(report["diagram"]),
        *_objects_section(report),
        *_images_section(report["images"]),
        *_gates_section(report["gates"]),
        *_verify_section(report["verify"]),
        *_aiops_section(report["aiops"]),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _architecture_section(diagram: dict[str, Any]) -> list[str]:
    lines = ["## Architecture", ""]
    svg = diagram["svg"]
    if svg:
        lines += [f"![architecture diagram]({svg})", "", f"([{svg}]({svg}), generated with graphviz)", ""]
    else:
        lines += ["_graphviz `dot` was not available: the Mermaid diagram only._", ""]
    return [*lines, "```mermaid", diagram["mermaid"], "```", ""]


def _objects_section(report: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{n} {k}" for k, n in report["object_counts"].items())
    lines = ["## Deployed objects", "", f"{len(report['objects'])} objects read from the API: {counts}.", ""]
    return lines + _table(
        ["kind", "name", "component", "ready", "replicas", "status", "age"],
        [
            [r["kind"], r["name"], r["component"], r["ready"], r["replicas"], r["status"], r["age"]]
            for r in report["objects"]
        ],
    )


def _images_section(images: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Images", ""]
    if not images:
        return [*lines, "No build recorded (`.state/images.json` is missing): run `inv build`."]
    return lines + _table(
        ["component", "image", "image ID", "size", "added by its own layers"],
        [
            [i["component"], f"`{i['ref']}`", f"`{i['image_id'][:19]}`", _mb(i["size_bytes"]),
             _mb(i["added_bytes"])]
            for i in images
        ],
    )


def _gates_section(gates: dict[str, Any]) -> list[str]:
    lines = ["", "## Stage gates", ""]
    for stage, gate in gates.items():
        if gate is None:
            lines += [f"### {stage}: not run", ""]
            continue
        verdict = "passed" if gate["passed"] else "FAILED"
        lines += [f"### {stage}: {verdict} ({gate['finished_at']})", ""]
        lines += _table(
            ["check", "verdict", "evidence", "fix"],
            [[c["name"], c["verdict"], c["evidence"], c["fix"]] for c in gate["checks"]],
        )
        lines.append("")
    return lines


def _verify_section(verify: dict[str, Any] | None) -> list[str]:
    lines = ["## End-to-end verification", ""]
    if verify is None:
        return [*lines, "`inv verify` has not run yet.", ""]
    return [
        *lines,
        f"`inv verify` {'passed' if verify['passed'] else 'FAILED'} at {verify['finished_at']}"
        f" in {verify['duration_s']}s, reaching the frontend via {verify['access_kind']}: "
        + ", ".join(f"{n} {v}" for v, n in verify["counts"].items() if n)
        + ". The checks are in the verify table above.",
        "",
    ]


def _aiops_section(aiops: dict[str, Any] | None) -> list[str]:
    lines = ["## AIOps findings", ""]
    if aiops is None:
        lines += ["`inv aiops` has not run yet.", ""]
    elif not aiops["findings"]:
        lines += [f"The doctor found no problem ({aiops['finished_at']}).", ""]
    else:
        lines += _table(
            ["finding", "object", "evidence", "fix", "observed"],
            [[f.get("kind"), f.get("object"), f.get("evidence"), f.get("fix"), f.get("observed_at")]
             for f in aiops["findings"]],
        )
        lines.append("")
    if aiops and aiops["tools"]:
        lines += ["AI tools run:", ""]
        lines += _table(
            ["tool", "status", "detail"],
            [
                [t.get("tool", t.get("name", "")), t.get("status", ""), t.get("reason", "")]
                for t in aiops["tools"]
            ],
        )
        lines.append("")
    return lines


def find_secrets(texts: dict[str, str], secrets: list[str], min_len: int = 8) -> list[str]:
    """Which files contain which (masked) secret: values shorter than `min_len` are not
    scanned (they would match ordinary words; the report never includes values anyway)."""
    hits = []
    for name, text in texts.items():
        for index, value in enumerate(secrets, 1):
            if len(value) >= min_len and value in text:
                hits.append(f"{name} contains secret value #{index} of the settings")
    return hits
