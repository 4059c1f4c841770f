"""Stage 7, `inv docs`: write docs/deployment-report.md/.json and docs/architecture.svg
from the live cluster, the recorded build and every stage's gate. Returns the
"docs" GateResult.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy.access import frontend_service_name, plan_access
from todo_deploy.artifacts import load_images
from todo_deploy.console import say
from todo_deploy.gate_details import DocsDetails
from todo_deploy.gates import Check, GateResult, Verdict, scopes_for, standing
from todo_deploy.kube import Kube, KubeError
from todo_deploy.stages.docs import diagram
from todo_deploy.stages.docs.report import (
    build_report,
    collect_objects,
    find_secrets,
    render_markdown,
)
from todo_deploy.tools.commands import Runner, scrub

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings

STAGE = "docs"


REPORT_MD = "deployment-report.md"
REPORT_JSON = "deployment-report.json"
DIAGRAM_SVG = "architecture.svg"


def report_gates(loaded: LoadedSettings, this_run: list[Check]) -> dict[str, GateResult | None]:
    """The gates the report shows: those that describe this deployment (never a pass of
    one since removed), and for docs this run's checks so far, not the previous run's
    (which could say "graphviz not on PATH" beside the SVG this run just drew)."""
    gates = {
        stage: standing(loaded.state_dir, stage, scope)[0]
        for stage, scope in scopes_for(loaded.settings).items()
    }
    gates[STAGE] = GateResult(STAGE, list(this_run), scope=scopes_for(loaded.settings)[STAGE])
    return gates


def run(
    loaded: LoadedSettings,
    *,
    kube: Kube | None = None,
    runner: Runner | None = None,
    out_dir: Path | None = None,
    log: Callable[[str], None] = say,
) -> GateResult:

    settings = loaded.settings
    out = out_dir or loaded.root / "docs"
    details = DocsDetails(out_dir=str(out))
    try:
        kube = kube or Kube(settings.context_name)
        objects = collect_objects(kube, settings)
        runner = runner or Runner(log=log, secrets=settings.secret_values())
        plan = plan_access(settings, kube, runner)
    except KubeError as exc:
        return GateResult(
            STAGE,
            [Check.of("live objects read", False, str(exc)[:300], "Is the cluster up? `inv status`.")],
            details=details.as_dict(),
        )
    log(f"docs: {len(objects)} live object(s) in namespace {settings.namespace}")
    access = {"kind": plan.kind, "url": plan.url, "detail": plan.detail}
    checks = [_objects_check(objects, settings.namespace)]

    graph = diagram.build_graph(objects, plan.kind, frontend_service_name(settings))
    mermaid_text = diagram.mermaid(graph)
    out.mkdir(parents=True, exist_ok=True)
    svg_path = out / DIAGRAM_SVG
    diagram_check, svg_name = _write_diagram(graph, svg_path,
                                             f"{settings.release_name} in {settings.namespace}")
    checks.append(diagram_check)

    gates = report_gates(loaded, checks)
    report = build_report(
        settings,
        objects,
        load_images(loaded.state_dir),
        gates,
        access,
        mermaid_text,
        svg_name,
        context=kube.context,
    )
    md_path, json_path = out / REPORT_MD, out / REPORT_JSON
    checks.append(_write_report(report, render_markdown(report, settings), md_path, json_path,
                                sum(1 for g in gates.values() if g)))
    checks.append(_secrets_check((md_path, json_path, svg_path), settings.secret_values()))
    details.report, details.json = str(md_path), str(json_path)
    details.svg = str(svg_path) if svg_name else None
    details.objects, details.access = len(objects), access
    return GateResult(STAGE, checks, details=details.as_dict())


def _objects_check(objects: list[dict[str, Any]], namespace: str) -> Check:
    """Objects were read, each with its uid (what the API returns, not a rendered manifest)."""
    with_uid = [o for o in objects if (o.get("metadata") or {}).get("uid")]
    kinds = sorted({o["kind"] for o in objects})
    return Check.of(
        "live objects read",
        bool(objects) and len(with_uid) == len(objects),
        f"{len(objects)} object(s) read from the API in {namespace} "
        f"({', '.join(kinds) or 'none'}), each with its uid",
        "Nothing is deployed under the app's labels: run `inv deploy` first.",
    )


def _write_diagram(graph: diagram.Graph, svg_path: Path, title: str) -> tuple[Check, str | None]:
    """Render the SVG diagram with graphviz when it is there: its check, and the SVG's name
    for the report (None when the report has the Mermaid block only)."""
    if not diagram.dot_available():
        return Check(
            "diagram written",
            Verdict.WARN,
            "graphviz `dot` is not on PATH: the report has the Mermaid block only",
            "Install graphviz (`apt-get install graphviz` / `brew install graphviz`).",
        ), None
    try:
        diagram.render_svg(graph, svg_path, title)
        size = svg_path.stat().st_size
        ok = size > 0 and b"<svg" in svg_path.read_bytes()[:2000]
        return Check.of(
            "diagram written",
            ok,
            f"{svg_path} ({size} bytes, {len(graph.nodes)} nodes, {len(graph.edges)} edges)"
            " and a Mermaid block in the report",
            "graphviz produced no SVG: run `dot -V`.",
        ), DIAGRAM_SVG
    except Exception as exc:  # noqa: BLE001 - graphviz raises several kinds; reported
        return Check(
            "diagram written",
            Verdict.WARN,
            f"graphviz failed ({type(exc).__name__}: {exc}); Mermaid block only",
            "Install graphviz (`apt-get install graphviz`).",
        ), None


def _write_report(report: dict[str, Any], markdown: str, md_path: Path, json_path: Path,
                  gates_run: int) -> Check:
    """Write the Markdown and JSON reports; the check that both hold something."""
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    return Check.of(
        "report written",
        md_path.stat().st_size > 0 and bool(json.loads(json_path.read_text())["objects"]),
        f"{md_path} ({len(markdown.splitlines())} lines), {json_path}: "
        f"{len(report['objects'])} objects, {gates_run} stage gate(s)",
        "Check that docs/ is writable.",
    )


def _secrets_check(paths: tuple[Path, ...], secrets: list[str]) -> Check:
    """Scan the files written for secret values; scrub any found (never left on disk) and
    fail loudly."""
    written = {p.name: p.read_text(errors="replace") for p in paths if p.exists()}
    hits = find_secrets(written, secrets)
    if hits:
        for path in paths:
            if path.exists():
                path.write_text(scrub(path.read_text(errors="replace"), secrets))
    scanned = sum(1 for s in secrets if len(s) >= 8)
    return Check.of(
        "no secret values",
        not hits,
        f"{', '.join(written)} scanned for {scanned} secret value(s): "
        + ("; ".join(hits) + " (scrubbed)" if hits else "none found"),
        "A secret reached a gate's evidence or an object: find its source and fix it.",
    )
