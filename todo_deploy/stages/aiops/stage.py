"""Stage 5, `inv aiops`: the built-in doctor decides the gate; the AI tools advise.

`run()` returns a GateResult whose checks are
- the doctor's findings (each a `fail`), or one `pass` "no problem found";
- one check per AI tool and playbook: `skip` when the tool is missing (one line
  saying what it is and how to get it), `pass` when it answered, `warn` when it
  failed or timed out (with the stderr tail). The tools never fail the gate.
Every tool's captured output is in the gate's `AiopsDetails.tools`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from todo_deploy import doctor
from todo_deploy.artifacts import load_images
from todo_deploy.console import say
from todo_deploy.gate_details import AiopsDetails
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.kube import Kube
from todo_deploy.stages.aiops.adapters import KAGENT_AGENT, TOOLS, Kagent, Tool, ToolRun, make_tools
from todo_deploy.stages.aiops.playbooks import CHOICES, PlaybookRefused, build
from todo_deploy.tools.commands import Runner

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.doctor import Finding, Snapshot

STAGE = "aiops"


Collector = Callable[["Settings", str], "Snapshot"]


def collect_namespace(settings: Settings, namespace: str) -> Snapshot:
    """The doctor's snapshot of `namespace`, read through the one Kubernetes access layer."""
    return doctor.collect(Kube(settings.context_name), namespace)


def doctor_checks(
    settings: Settings,
    namespace: str,
    collect: Collector | None = None,
    images: Mapping[str, ImageRef] | None = None,
) -> tuple[list[Check], list[Finding]]:
    """Run the doctor on `namespace`: one fail check per finding (causes first), or one pass.

    `images` (what `inv build` recorded) lets it say when a workload runs another image.
    """
    try:
        snapshot = (collect or collect_namespace)(settings, namespace)
    except doctor.NamespaceMissing:
        return [Check.of(
            "doctor: namespace", False, f"namespace {namespace} does not exist",
            "deploy first: `inv deploy` (or `inv deploy --helm`), or pass --namespace",
        )], []
    except Exception as exc:  # noqa: BLE001 - unreachable cluster, bad kubeconfig: no verdict
        return [Check.of(
            "doctor: cluster", False,
            f"could not read namespace {namespace}: {type(exc).__name__}: {str(exc)[:300]}",
            "check the cluster answers (`inv cluster`) and KUBE_CONTEXT",
        )], []
    findings = doctor.diagnose(snapshot, doctor.Target.of(settings), images)
    if not findings:
        return [Check.of(
            "doctor", True,
            f"no problem found in namespace {namespace} ({len(snapshot.pods)} pods, "
            f"{len(snapshot.services)} services, {len(snapshot.jobs)} jobs, "
            f"{len(snapshot.pvcs)} PVCs checked at {snapshot.observed_at or 'now'})",
        )], []
    return [f.check() for f in findings], findings


def _tool_check(name: str, playbook: str, runs: list[ToolRun]) -> Check:
    bad = [r for r in runs if not r.ok]
    label = f"{name}: {playbook}"
    if not bad:
        seconds = sum(r.duration_s for r in runs)
        return Check(label, Verdict.PASS, f"{len(runs)} prompt(s) answered in {seconds:.1f}s")
    first = bad[0]
    evidence = f"{len(bad)}/{len(runs)} prompt(s) {first.status}: {first.reason}"
    if first.error_tail:
        evidence += f"; stderr: {first.error_tail}"
    return Check(
        label, Verdict.WARN, evidence,
        f"advisory only: run `{first.command[:200]}` by hand to see why",
    )


def tool_checks(
    tools: Mapping[str, Tool],
    playbook_name: str,
    settings: Settings,
    *,
    namespace: str,
    allow_changes: bool,
    replicas: int | None,
    root: Path,
    install_kagent: bool = False,
    log: Callable[[str], None] = say,
) -> tuple[list[Check], list[ToolRun]]:
    """Send the playbook's prompts to every tool it names that is available."""
    playbook = build(
        playbook_name, settings, namespace=namespace,
        allow_changes=allow_changes, replicas=replicas, root=root,
    )
    checks: list[Check] = []
    runs: list[ToolRun] = []
    present = {name: tools[name].available() for name in tools}

    if install_kagent:
        checks, runs = _install_only(tools, log)
    for name in playbook.tools:
        if not present.get(name):
            line = TOOLS[name].missing_line()
            checks.append(Check(f"{name}: {playbook.name}", Verdict.SKIP, line))
            runs.append(ToolRun(name, playbook.name, "", "missing", reason=line))
            continue  # said once, by the gate's row: not also as a log line above it
        tool_runs = [
            tools[name].ask(prompt, playbook=playbook.name, allow_changes=allow_changes)
            for prompt in playbook.prompts
        ]
        runs.extend(tool_runs)
        check = _tool_check(name, playbook.name, tool_runs)
        checks.append(check)
        log(f"{name}: {playbook.name} {check.verdict.value}: {check.evidence}")
    return checks, runs


def run(
    loaded: LoadedSettings,
    playbook: str = "health",
    *,
    allow_changes: bool = False,
    install_kagent: bool = False,
    replicas: int | None = None,
    namespace: str | None = None,
    runner: Runner | None = None,
    environ: Mapping[str, str] | None = None,
    collect: Collector | None = None,
    log: Callable[[str], None] = say,
    kagent_agent: str = KAGENT_AGENT,
) -> GateResult:
    """`inv aiops [playbook]`: the doctor (always) plus the playbook's AI tools (unless `doctor`).

    Raises PlaybookRefused before touching anything when the playbook may not run
    as asked (e.g. `scale` without --allow-changes).
    """
    settings = loaded.settings
    ns = namespace or settings.namespace
    if playbook not in CHOICES:
        raise PlaybookRefused(f"unknown playbook {playbook!r}: choose one of {', '.join(CHOICES)}")
    if playbook != "doctor":  # refuse before any side effect
        build(playbook, settings, namespace=ns, allow_changes=allow_changes,
              replicas=replicas, root=loaded.root)

    log(f"doctor: reading namespace {ns} (release {settings.release_name})")
    checks, findings = doctor_checks(settings, ns, collect, load_images(loaded.state_dir))
    log(f"doctor: {len(findings)} finding(s)")

    runs: list[ToolRun] = []
    if playbook != "doctor" or install_kagent:
        runner = runner or Runner(log=log, secrets=settings.secret_values())
        tools = make_tools(runner, settings, environ, workdir=loaded.root,
                           kagent_agent=kagent_agent)
        if playbook == "doctor":
            tool_results, runs = _install_only(tools, log)
        else:
            tool_results, runs = tool_checks(
                tools, playbook, settings, namespace=ns, allow_changes=allow_changes,
                replicas=replicas, root=loaded.root, install_kagent=install_kagent, log=log,
            )
        checks.extend(tool_results)

    details = AiopsDetails(
        playbook=playbook, kagent_agent=kagent_agent, namespace=ns,
        release=settings.release_name, allow_changes=allow_changes,
        findings=[f.to_dict() for f in findings], tools=[r.to_dict() for r in runs],
    )
    return GateResult(STAGE, checks, details=details.as_dict())


def _install_only(
    tools: Mapping[str, Tool], log: Callable[[str], None]
) -> tuple[list[Check], list[ToolRun]]:
    kagent = tools["kagent"]
    if not kagent.available():  # the gate's row says so (once)
        return [Check("kagent: install", Verdict.SKIP, TOOLS["kagent"].missing_line())], []
    assert isinstance(kagent, Kagent)
    done = kagent.install()
    log(f"kagent install: {done.status} ({done.duration_s:.1f}s) {done.reason}".rstrip())
    return [_tool_check("kagent", "install", [done])], [done]


def render_findings(result: GateResult) -> None:
    """One line before the gate table, which lists the findings (causes first) with their
    evidence and fix: when the doctor looked, and how many it found."""
    findings = AiopsDetails.of(result).findings
    if findings:
        say(f"doctor: observed at {findings[0].get('observed_at') or '?'}; each finding is a "
            "cause, what it causes is folded under it")
