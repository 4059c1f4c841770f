"""The status table of `inv status` and the MCP `status` tool: each stage's recorded
gate, checked against the live cluster.

A gate records what held when it ran; a hand `kubectl scale` or `kubectl set image`
afterwards does not change `.state/`. So the table reads the release's Deployments
and pods once (two label-selected lists, a few seconds at most) and marks each
recorded pass of the deployment that the cluster now contradicts:
"recorded pass; live: backend 0/2 ready". When the cluster cannot be read the
table says it shows the records only.

Dev pods (issue 24: deployed with `--dev`) are named on the deploy/helm rows, from the
pods' own marks (todo_deploy/release/live_update.py): "dev: synced from working tree
GENERATION, not image TAG", or "dev mode: image TAG's code, not synced yet".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from todo_deploy.access import app_url
from todo_deploy.artifacts import images_path, load_images
from todo_deploy.chart import values as chart_values
from todo_deploy.components import BUILT
from todo_deploy.gate_details import DeployDetails
from todo_deploy.gates import (
    AFTER_DEPLOY,
    DEPLOY_STAGES,
    STAGES,
    GateResult,
    current_deployment,
    scopes_for,
    standing,
)
from todo_deploy.kube import Kube, KubeError, label_selector
from todo_deploy.release.live_update import dev_note

if TYPE_CHECKING:
    from pathlib import Path

    from todo_deploy.access.app_url import AppUrl
    from todo_deploy.config import LoadedSettings, Settings

READ_TIMEOUT_S = 5.0  # status is a glance: a cluster that does not answer by then is "records only"
DESCRIBES_THE_DEPLOYMENT = (*DEPLOY_STAGES, *AFTER_DEPLOY)
COMPONENT_LABEL = "app.kubernetes.io/component"
GateState = Literal["pass", "fail", "not run", "not current"]


@dataclass(frozen=True)
class LiveComponent:
    """One built component as the cluster runs it now."""

    name: str
    wanted: int  # the replicas the settings ask for
    ready: int  # Ready pods not being deleted
    images: tuple[str, ...]  # what its pods run (its Deployment's, when it has no pods)
    found: bool = True  # its Deployment exists
    dev: tuple[str, ...] = ()  # what its dev pods serve (live_update.dev_note), if any


@dataclass(frozen=True)
class Live:
    components: dict[str, LiveComponent] = field(default_factory=dict)
    error: str = ""  # why the cluster could not be read; "" when it was


@dataclass(frozen=True)
class GateRow:
    stage: str
    command: str
    state: GateState  # what .state/ records
    result: GateResult | None = None
    why: str = ""  # why an older gate does not describe this deployment
    live: tuple[str, ...] = ()  # what the cluster contradicts in a recorded pass
    dev: tuple[str, ...] = ()  # deploy/helm rows: the live dev pods' code ("backend dev: ...")

    @property
    def verdict(self) -> str:
        """The gate column: "recorded pass; live: backend 0/2 ready" when contradicted;
        dev pods named after it."""
        shown = f"recorded pass; live: {', '.join(self.live)}" if self.live else self.state
        return f"{shown}; {'; '.join(self.dev)}" if self.dev else shown


@dataclass(frozen=True)
class StatusTable:
    target: str  # context/namespace/release the gates describe
    rows: list[GateRow]
    compared: str  # what the records were compared with, or why not
    app: AppUrl | None = None  # the app's kept URL


# ---- the live read ----------------------------------------------------------------------------


def _ready(pod: dict[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _images(spec: dict[str, Any]) -> list[str]:
    return [c.get("image", "") for c in spec.get("containers") or []]


def _component_of(obj: dict[str, Any]) -> str:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL, "")


def wanted_replicas(settings: Settings) -> dict[str, int]:
    return {"backend": settings.backend_replicas, "frontend": settings.frontend_replicas}


def live_from(
    deployments: list[dict[str, Any]], pods: list[dict[str, Any]], wanted: dict[str, int]
) -> dict[str, LiveComponent]:
    """The built components as the listed Deployments and pods show them."""
    found: dict[str, LiveComponent] = {}
    for name, component in BUILT.items():
        own = [d for d in deployments if _component_of(d) == component.label]
        own_pods = [p for p in pods if _component_of(p) == component.label]
        images = [i for p in own_pods for i in _images(p.get("spec") or {})] or [
            i for d in own
            for i in _images(((d.get("spec") or {}).get("template") or {}).get("spec") or {})]
        notes = [dev_note(p) for p in own_pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        found[name] = LiveComponent(
            name, wanted.get(name, 1), sum(1 for p in own_pods if _ready(p)),
            tuple(dict.fromkeys(images)), found=bool(own),
            dev=tuple(dict.fromkeys(n for n in notes if n)))
    return found


def read_live(settings: Settings, kube: Kube | None = None) -> Live:
    """The release's Deployments and pods in its namespace, in one listing each."""
    try:
        kube = kube or Kube(settings.context_name)
        query = [("labelSelector", label_selector(chart_values.app_labels(settings)))]
        listed = [
            kube.request("GET", kube.path(api_version, kind, settings.namespace), query=query,
                         timeout=READ_TIMEOUT_S).get("items", [])
            for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Pod"))
        ]
    except KubeError as exc:
        return Live(error=str(exc).splitlines()[0][:200])
    return Live(live_from(listed[0], listed[1], wanted_replicas(settings)))


# ---- the comparison ---------------------------------------------------------------------------


def contradictions(live: dict[str, LiveComponent], expected: dict[str, str]) -> list[str]:
    """What the cluster shows against a recorded pass: too few ready pods, another image.

    `expected` is component -> the image reference that was deployed (empty: unknown)."""
    found = []
    for name, now in live.items():
        if not now.found:
            found.append(f"{name} Deployment missing")
            continue
        if now.ready < now.wanted:
            found.append(f"{name} {now.ready}/{now.wanted} ready")
        want = expected.get(name, "")
        other = [image for image in now.images if image != want]
        if want and other:
            found.append(f"{name} runs image {', '.join(other)}, built {want}")
    return found


def dev_notes(live: dict[str, LiveComponent]) -> list[str]:
    """component -> what its dev pods serve: "backend dev: synced from working tree ..."."""
    return [f"{name} {note}" for name, now in live.items() for note in now.dev]


def deployed_images(state_dir: Path, deployment: GateResult | None) -> dict[str, str]:
    """component -> the image reference the current deployment rolled out.

    A raw deploy records them; a Helm install deployed the last build's images, unless
    a build came after it (then what it deployed is not known here)."""
    if deployment is None:
        return {}
    if deployment.stage == "deploy":
        return dict(DeployDetails.of(deployment).images)
    try:
        built_at = datetime.fromtimestamp(images_path(state_dir).stat().st_mtime, UTC)
        # finished_at is in whole seconds (truncated): compare at that precision.
        if built_at.replace(microsecond=0) > datetime.fromisoformat(deployment.finished_at):
            return {}
    except (OSError, ValueError):
        return {}
    return {name: ref.ref for name, ref in load_images(state_dir).items()}


# ---- the table ----------------------------------------------------------------------------------


def gate_row(stage: str, result: GateResult | None, why: str, live: list[str],
         dev: list[str]) -> GateRow:
    command = STAGES[stage].command
    if result is None:
        return GateRow(stage, command, "not current" if why else "not run", why=why)
    state: GateState = "pass" if result.passed else "fail"
    marks = tuple(live) if result.passed and stage in DESCRIBES_THE_DEPLOYMENT else ()
    return GateRow(stage, command, state, result, live=marks,
                   dev=tuple(dev) if stage in DEPLOY_STAGES else ())


def build_table(
    loaded: LoadedSettings, read: Callable[[Settings], Live] | None = None
) -> StatusTable:
    """Every stage's gate as it stands for these settings, checked against the cluster."""
    settings, state_dir = loaded.settings, loaded.state_dir
    scopes = scopes_for(settings)
    found = {stage: standing(state_dir, stage, scopes[stage]) for stage in STAGES}
    deployment = current_deployment(state_dir, scopes["deploy"])
    live_marks: list[str] = []
    dev: list[str] = []
    if deployment is None:
        compared = "records only: no current deployment to compare with the cluster"
    else:
        live = (read or read_live)(settings)
        if live.error:
            compared = f"records only: the cluster could not be read ({live.error})"
        else:
            live_marks = contradictions(live.components, deployed_images(state_dir, deployment))
            dev = dev_notes(live.components)
            compared = (f"compared with the live cluster (namespace {settings.namespace}): "
                        + ("; ".join(live_marks) if live_marks else "it matches the records")
                        + "".join(f"; {note}" for note in dev))
    return StatusTable(
        target=scopes["deploy"],
        rows=[gate_row(stage, result, why, live_marks, dev) for stage, (result, why) in found.items()],
        compared=compared,
        app=app_url.load(state_dir),
    )
