"""The doctor's findings as text: what a failed `inv deploy` / `inv deploy --helm` prints."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from todo_deploy.doctor.engine import diagnose
from todo_deploy.doctor.model import (
    Finding,
    Index,
    NamespaceMissing,
    Snapshot,
    Target,
    dig,
    is_ready,
    labels_of,
    matches,
)
from todo_deploy.doctor.observe import collect
from todo_deploy.kube import KubeError

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings
    from todo_deploy.kube import Kube


def _selector_labels(selector: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(",") if "=" in part)


def pod_overview(snapshot: Snapshot, selectors: Iterable[str] = ("",)) -> list[str]:
    """One line per workload with pods under one of `selectors` (equality label
    selectors): how many pods, how many ready, their phases."""
    wanted = [_selector_labels(s) for s in selectors]
    index = Index.of(snapshot)
    lines = []
    for ref, pods in sorted(index.pods.items()):
        pods = [p for p in pods if any(matches(w, labels_of(p)) for w in wanted)]
        if not pods:
            continue
        phases: dict[str, int] = {}
        for pod in pods:
            phase = str(dig(pod, "status", "phase", default="?"))
            phases[phase] = phases.get(phase, 0) + 1
        shown = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items()))
        ready = sum(1 for p in pods if is_ready(p))
        lines.append(f"{ref}: {len(pods)} pod(s), {ready} ready ({shown})")
    return lines


def render_text(findings: list[Finding], overview: list[str] | None = None) -> str:
    lines = [f"  {line}" for line in overview or []]
    if not findings:
        lines.append("  the doctor found no cause: the pods may still be starting (a slow "
                     "image pull or start-up); `inv logs` shows what they print")
    for number, f in enumerate(findings, 1):
        lines.append(f"{number}. {f.kind}: {f.object}")
        lines.append(f"   {f.headline}")
        lines.extend(f"   causes: {c}" for c in f.consequences)
        lines.append(f"   fix: {f.fix}")
    return "\n".join(lines)


def explain(
    kube: Kube,
    settings: Settings,
    namespace: str,
    selectors: str | Iterable[str] = "",
    images: Mapping[str, ImageRef] | None = None,
    collector: Callable[[Kube, str], Snapshot] = collect,
) -> str:
    """The doctor's findings about `namespace` as text, for a failed rollout's message;
    first how the pods under `selectors` (the workloads that failed) stand."""
    try:
        snapshot = collector(kube, namespace)
    except (KubeError, NamespaceMissing) as exc:
        return f"the doctor could not read namespace {namespace}: {exc}"
    findings = diagnose(snapshot, Target.of(settings), images)
    header = f"the doctor's diagnosis of namespace {namespace} ({snapshot.observed_at}):"
    shown = [selectors] if isinstance(selectors, str) else list(selectors)
    return header + "\n" + render_text(findings, pod_overview(snapshot, shown or [""]))
