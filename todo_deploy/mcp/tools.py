"""One function per MCP tool: the loaded settings and the tool's arguments in, a
pydantic model out. Each calls the workflow's own public functions (the same
checks the pipeline trusts); `server` only registers them.

A tool that must not run as asked raises `Refused` (its message says how to
allow it); one that cannot do its job raises `Failed`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from todo_deploy.access import app_url as urls
from todo_deploy.access import logs as app_logs
from todo_deploy.artifacts import load_images
from todo_deploy.chart import values as chart_values
from todo_deploy.components import LOG_SOURCES
from todo_deploy.config import effective_rows
from todo_deploy.gate_details import VerifyDetails
from todo_deploy.kube import Kube, label_selector
from todo_deploy.pipeline import conductor
from todo_deploy.pipeline.registry import stage_module
from todo_deploy.pipeline.status import build_table
from todo_deploy.tools.commands import scrub

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings
    from todo_deploy.gates import Check

NAME = "todo-deploy"  # the MCP server's name, in every client configuration
READ_ONLY_TOOLS = ("status", "doctor", "verify", "logs", "app_url", "config")
CHANGE_TOOLS = ("deploy", "rollback", "scale")
ALLOW_HINT = "start the server with `inv mcp --allow-changes` to allow deploy, rollback and scale"
LOG_LINES_MAX = 500
LINE_CHARS_MAX = 2000

LogComponent = Literal[LOG_SOURCES]  # type: ignore[valid-type]  # a tuple: pydantic reads it, mypy cannot
ScalableComponent = Literal["backend", "frontend"]
Replicas = Annotated[int, Field(ge=1, le=20, description="Replica count, 1-20.")]
LogLines = Annotated[int, Field(ge=1, le=LOG_LINES_MAX, description="Most lines to return.")]


class Refused(Exception):
    """The tool may not run as asked; the message says how to allow it."""


class Failed(Exception):
    """The tool could not do its job; the message says why and what to do."""


# ---- outputs ----------------------------------------------------------------------------------


class CheckOut(BaseModel):
    name: str
    verdict: Literal["pass", "fail", "warn", "skip"]
    evidence: str = ""
    fix: str = ""


class GateOut(BaseModel):
    stage: str
    command: str
    state: Literal["pass", "fail", "not run", "not current"]
    finished_at: str = ""
    why: str = Field("", description="Why an older gate does not describe this deployment.")
    live: list[str] = Field(default_factory=list, description=(
        "What the live cluster contradicts in this recorded pass, e.g. 'backend 0/2 ready'."))
    checks: list[CheckOut] = Field(default_factory=list)


class StatusOut(BaseModel):
    target: str = Field(description="context/namespace/release the gates describe")
    gates: list[GateOut]
    compared: str = Field("", description=(
        "What the records were compared with: the live cluster, or why they are shown alone."))
    app_url: str = ""


class FindingOut(BaseModel):
    kind: str
    evidence: str
    fix: str


class FindingGroup(BaseModel):
    object: str
    findings: list[FindingOut]


class DoctorOut(BaseModel):
    namespace: str
    release: str
    healthy: bool
    summary: str
    groups: list[FindingGroup] = Field(default_factory=list)
    checks: list[CheckOut] = Field(default_factory=list, description=(
        "The doctor's verdict when it has no findings (no problem, or why it could not look)."))


class VerifyOut(BaseModel):
    passed: bool
    selected: list[str]
    left_out_read_only: list[str] = Field(
        default_factory=list,
        description="Pod-deleting checks left out because the server is read-only.")
    checks: list[CheckOut]


class LogLineOut(BaseModel):
    at: str
    component: str
    source: str
    text: str


class LogsOut(BaseModel):
    namespace: str
    component: str
    lines: list[LogLineOut]
    dropped: int = Field(0, description="Older lines left out to stay within `lines`.")


class AppUrlOut(BaseModel):
    url: str
    kind: str
    detail: str
    answers: bool


class SettingOut(BaseModel):
    key: str
    value: str
    source: str


class ConfigOut(BaseModel):
    settings: list[SettingOut]


class GateRunOut(BaseModel):
    stage: str
    passed: bool
    checks: list[CheckOut]


class RollbackOut(BaseModel):
    ok: bool
    message: str


class ScaleOut(BaseModel):
    component: str
    workload: str
    before: int
    replicas: int
    ready: int
    seconds: float


# ---- helpers ----------------------------------------------------------------------------------


def check_out(check: Check) -> CheckOut:
    return CheckOut(name=check.name, verdict=check.verdict.value, evidence=check.evidence,
                    fix=check.fix)


def _kube(loaded: LoadedSettings) -> Kube:
    return Kube(loaded.settings.context_name)


# ---- the read-only tools ----------------------------------------------------------------------


def status(loaded: LoadedSettings) -> StatusOut:
    table = build_table(loaded)
    gates = [GateOut(
        stage=row.stage, command=row.command, state=row.state, why=row.why, live=list(row.live),
        finished_at=row.result.finished_at if row.result else "",
        checks=[check_out(c) for c in row.result.checks] if row.result else [],
    ) for row in table.rows]
    return StatusOut(target=table.target, gates=gates, compared=table.compared,
                     app_url=table.app.url if table.app else "")


def doctor(loaded: LoadedSettings, namespace: str | None = None) -> DoctorOut:
    settings = loaded.settings
    ns = namespace or settings.namespace
    checks, findings = stage_module("aiops").doctor_checks(settings, ns, images=load_images(loaded.state_dir))
    groups: dict[str, list[FindingOut]] = {}
    for f in findings:
        groups.setdefault(f.object, []).append(
            FindingOut(kind=f.kind, evidence=f.evidence, fix=f.fix))
    healthy = not findings and all(c.verdict.value == "pass" for c in checks)
    summary = (checks[0].evidence if healthy or not findings
               else f"{len(findings)} problem(s) in {len(groups)} object(s) of namespace {ns}")
    return DoctorOut(
        namespace=ns, release=settings.release_name, healthy=healthy, summary=summary,
        groups=[FindingGroup(object=o, findings=fs) for o, fs in groups.items()],
        # With findings the checks repeat them; without, they say why (healthy, no namespace).
        checks=[] if findings else [check_out(c) for c in checks],
    )


def verify(
    loaded: LoadedSettings,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    *,
    allow_changes: bool = False,
) -> VerifyOut:
    verify_checks = stage_module("verify.checks")
    disruptive = stage_module("verify").DISRUPTIVE_CHECKS

    only_text, skip_text = ",".join(only or []), ",".join(skip or [])
    try:
        selected = verify_checks.select_checks(only_text or None, skip_text or None)
    except verify_checks.SelectionError as exc:
        raise Failed(str(exc)) from None
    left_out: list[str] = []
    if not allow_changes:
        asked = [n for n in (only or []) if n in disruptive]
        if asked:
            raise Refused(f"{', '.join(asked)} delete(s) pods; {ALLOW_HINT}")
        left_out = [n for n in selected if n in disruptive]
        skip_text = ",".join([*(skip or []), *left_out])
    result = conductor.run_recorded(loaded, "verify", Refused, only=only_text or None,
                                    skip=skip_text or None)
    return VerifyOut(
        passed=result.passed, selected=VerifyDetails.of(result).checks_selected or selected,
        left_out_read_only=left_out, checks=[check_out(c) for c in result.checks],
    )


def logs(
    loaded: LoadedSettings, component: LogComponent | None = None, lines: int = 50
) -> LogsOut:
    settings = loaded.settings
    lines = max(1, min(int(lines), LOG_LINES_MAX))
    found = app_logs.snapshot(_kube(loaded), settings, component, tail=lines)
    kept = found[-lines:]
    secrets = settings.secret_values()
    return LogsOut(
        namespace=settings.namespace, component=component or "all",
        lines=[LogLineOut(
            at=line.at.isoformat() if line.at != app_logs.EPOCH else "",
            component=line.component, source=line.source,
            text=scrub(app_logs.readable(line.text)[1], secrets)[:LINE_CHARS_MAX],
        ) for line in kept],
        dropped=len(found) - len(kept),
    )


def app_url(loaded: LoadedSettings) -> AppUrlOut:
    """The kept URL when it answers; else what `inv open` does (a direct URL, or a
    background port-forward on this machine; it changes nothing in the cluster)."""
    kept = urls.load(loaded.state_dir)
    if kept and kept.target == urls.target_of(loaded) and urls.answers(kept.url):
        return AppUrlOut(url=kept.url, kind=kept.kind, detail=kept.detail, answers=True)
    try:
        app = urls.ensure(loaded)
    except RuntimeError as exc:
        raise Failed(f"cannot reach the app: {exc}") from None
    return AppUrlOut(url=app.url, kind=app.kind, detail=app.detail, answers=urls.answers(app.url))


def config(loaded: LoadedSettings) -> ConfigOut:
    return ConfigOut(settings=[SettingOut(key=k, value=v, source=s)
                               for k, v, s in effective_rows(loaded)])


# ---- the tools that change the cluster (the server refuses them unless --allow-changes) -------


def deploy(loaded: LoadedSettings, mode: Literal["raw", "helm"] = "raw") -> GateRunOut:
    result = conductor.run_recorded(loaded, "helm" if mode == "helm" else "deploy", Refused)
    return GateRunOut(stage=result.stage, passed=result.passed,
                      checks=[check_out(c) for c in result.checks])


def rollback(loaded: LoadedSettings, revision: int | None = None) -> RollbackOut:
    ok, message = stage_module("helm").rollback_any(loaded, revision or None, log=lambda _line: None)
    return RollbackOut(ok=ok, message=message)


def _deployment_of(kube: Kube, loaded: LoadedSettings, component: str) -> dict:
    settings = loaded.settings
    selector = label_selector(
        {**chart_values.app_labels(settings), "app.kubernetes.io/component": component})
    found = kube.list("apps/v1", "Deployment", settings.namespace, selector)
    if len(found) != 1:
        raise Failed(f"expected one {component} Deployment of release {settings.release_name} "
                     f"in namespace {settings.namespace}, found {len(found)}: deploy first")
    return found[0]


def scale(
    loaded: LoadedSettings, component: ScalableComponent, replicas: int,
    wait_s: float | None = None,
) -> ScaleOut:
    if not 1 <= replicas <= 20:
        raise Failed("replicas must be between 1 and 20")
    kube = _kube(loaded)
    ns = loaded.settings.namespace
    dep = _deployment_of(kube, loaded, component)
    name = dep["metadata"]["name"]
    before = int((dep.get("spec") or {}).get("replicas", 1))
    path = f"/apis/apps/v1/namespaces/{quote(ns)}/deployments/{quote(name)}/scale"
    kube.request("PATCH", path, body={"spec": {"replicas": replicas}},
                 content_type="application/merge-patch+json")
    started = time.monotonic()
    deadline = started + (wait_s if wait_s is not None
                          else min(loaded.settings.deploy_timeout_seconds, 300))
    ready = 0
    while True:
        now = kube.get("apps/v1", "Deployment", name, ns) or {}
        state = now.get("status") or {}
        ready = int(state.get("readyReplicas") or 0)
        settled = (ready == replicas and int(state.get("replicas") or 0) == replicas
                   and int(state.get("observedGeneration") or 0)
                   >= int((now.get("metadata") or {}).get("generation") or 0))
        if settled or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    return ScaleOut(component=component, workload=f"Deployment/{name}", before=before,
                    replicas=replicas, ready=ready,
                    seconds=round(time.monotonic() - started, 1))
