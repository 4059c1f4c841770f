"""Issue 22 item 2: every `inv …` command a message names exists, with its flags.

The commands are collected from the code itself: every string literal (and f-string,
its placeholders left out) under todo_deploy/ and tasks.py, so a hint added tomorrow is
checked too. Before: the backend-readiness hint said "run `inv doctor`" ("No idea
what 'doctor' is!")."""

from __future__ import annotations

import ast
import functools
import inspect
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

from invoke import Task

from tasks import ns

ROOT = Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"`inv ([^`]*)`")
PLACEHOLDER = "\0"


def literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    return None


def strings_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = [literal_text(node) for node in ast.walk(tree)]
    # Adjacent literals are one string already; a hint split over `+` is joined here.
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = literal_text(node.left), literal_text(node.right)
            if left is not None and right is not None:
                found.append(left + right)
    return [text for text in found if text]


@functools.cache  # two tests read it; parsing every module of todo_deploy takes ~0.5 s
def commands_in_code() -> dict[str, frozenset[str]]:
    """`inv …` command -> the files that name it."""
    commands: dict[str, set[str]] = {}
    for path in [*sorted((ROOT / "todo_deploy").rglob("*.py")), ROOT / "tasks.py"]:
        for text in strings_of(path):
            for match in COMMAND.finditer(text):
                if PLACEHOLDER not in match.group(1):
                    commands.setdefault(match.group(1).strip(), set()).add(
                        str(path.relative_to(ROOT)))
    return {command: frozenset(files) for command, files in commands.items()}


def flags_of(task: Task) -> set[str]:
    """The long flags `inv` derives from the task's parameters (read from its signature:
    `get_arguments()` would hand each help text out once, taking it from later readers)."""
    flags = {"--help", "-h"}
    for name, parameter in list(inspect.signature(task.body).parameters.items())[1:]:
        flag = name.strip("_").replace("_", "-")
        flags.add(f"--{flag}")
        if isinstance(parameter.default, bool):
            flags.add(f"--no-{flag}")
    return flags


def problem_with(command: str) -> str | None:
    """Why `inv <command>` would not parse: an unknown task or flag; None when it would."""
    words = command.split()
    if not words:
        return "no task named"
    name, rest = words[0], words[1:]
    if name.startswith("-"):
        return None if name in ("--list", "-l", "--help", "-h", "--version") else f"unknown {name}"
    if name not in ns.task_names and name not in {a for t in ns.task_names for a in ns[t].aliases}:
        return f"no task {name!r}"
    flags = flags_of(ns[name])
    for word in rest:
        if word == "--":
            break
        flag = word.split("=", 1)[0]
        if flag.startswith("-") and flag not in flags:
            return f"{name} has no {flag}"
    return None


def test_the_collection_finds_the_hints() -> None:
    found = commands_in_code()
    assert len(found) > 20
    assert "build" in found and "deploy --helm" in found and "aiops doctor" in found


def unknown_commands(found: Mapping[str, AbstractSet[str]]) -> dict[str, tuple[str, list[str]]]:
    """Each found `inv` command that names no task or a flag it lacks: (why, where)."""
    return {command: (problem, sorted(files)) for command, files in found.items()
            if (problem := problem_with(command))}


def test_every_inv_command_named_in_a_message_exists() -> None:
    assert unknown_commands(commands_in_code()) == {}


def test_the_checker_rejects_what_inv_would_reject() -> None:
    assert problem_with("doctor") == "no task 'doctor'"
    assert problem_with("open --forwards") == "open has no --forwards"
    assert problem_with("up --until deploy") is None
    assert problem_with("aiops doctor") is None


# --- evidence is text, never HTML -------------------------------------------------------

ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Todo &mdash; the service is unavailable</title>
<style>body { font: 14px sans-serif }</style></head>
<body><main><h1>Something went wrong</h1><p>Try again in a minute.</p></main></body></html>"""


def test_an_error_page_is_named_by_its_title_not_pasted_as_html() -> None:
    """Before: `signup: HTTP 503 <!doctype html><html lang="en"><head>…`."""
    import httpx

    from todo_deploy.stages.verify.client import FrontendError

    response = httpx.Response(503, text=ERROR_PAGE, headers={"content-type": "text/html"})
    message = str(FrontendError("signup", response))
    assert message == "signup: HTTP 503 (the frontend's error page: Todo — the service is unavailable)"
    assert "<" not in message


def test_a_page_without_a_title_is_named_by_its_first_line_of_text() -> None:
    import httpx

    from todo_deploy.stages.verify.client import body_excerpt

    page = "<html><head><style>p{}</style></head><body>\n<h1>Bad gateway</h1><p>x</p></body></html>"
    assert body_excerpt(httpx.Response(502, text=page)) == "(the frontend's error page: Bad gateway)"
    json_body = httpx.Response(400, json={"detail": "bad   request"})
    assert body_excerpt(json_body) == '{"detail":"bad request"}'


def test_image_identity_does_not_blame_a_stale_image_when_no_pod_runs(tmp_path: Path) -> None:
    """Before: with the backend scaled to 0, "A stale image is running: re-run `inv build`"."""
    from tests.unit.test_verify_units import _app_pod, _PodLister, settings_for
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.stages.verify.checks import VerifyContext, check_image_identity

    built = {c: ImageRef(c, f"todo-{c}", "abc", image_id=f"sha256:{d * 64}")
             for c, d in (("backend", "1"), ("frontend", "2"))}
    frontend = _app_pod("f-1", "frontend", built["frontend"].ref, "docker://sha256:" + "2" * 64)
    ctx = VerifyContext(settings_for(tmp_path).settings, "http://127.0.0.1:9",
                        log=lambda _: None, images=built)
    ctx.kube = _PodLister([frontend])  # type: ignore[assignment]
    [check] = check_image_identity(ctx)
    assert check.verdict.value == "fail" and "no backend pods" in check.evidence
    assert "stale" not in check.fix
    assert check.fix.startswith("No backend pod runs, so no image could be compared")


# --- a failed verify leads with the doctor's one cause ---------------------------------------


def scaled_backend_snapshot():  # type: ignore[no-untyped-def]
    from tests.unit.test_doctor_rules import NOW, replicaset, service, workload
    from todo_deploy.doctor.model import Snapshot

    backend = workload("Deployment", "backend", 0)
    return Snapshot("todo", NOW, services=[service("backend")], deployments=[backend],
                    replicasets=[replicaset(backend)])


def verify_checks() -> list:  # type: ignore[type-arg]
    from todo_deploy.gates import Check, Verdict

    return [
        Check("access", Verdict.PASS, "nodeport http://192.168.49.2:30080: HTTP 200"),
        Check("signup", Verdict.FAIL, "signup: HTTP 503 (the frontend's error page: Unavailable)",
              "read the frontend's logs"),
        Check("backend-readiness", Verdict.FAIL, "0/0 backend pods Ready", "`inv aiops doctor`"),
        Check("image-identity", Verdict.FAIL, "no backend pods", "No backend pod runs"),
    ]


def test_a_failed_verify_leads_with_the_doctors_cause_and_folds_the_rest(tmp_path: Path) -> None:
    """Before: 9 failures side by side, each with its own hint, the cause in none of them."""
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.gates import GateResult, Verdict
    from todo_deploy.pipeline.conductor import verify_failure_message as failure_message
    from todo_deploy.stages.verify.stage import (
        CAUSE,
        KNOCK_ON,
        doctor_findings,
        lead_with_cause,
    )

    loaded = LoadedSettings(Settings(backend_replicas=2), root=tmp_path)  # type: ignore[call-arg]
    findings = doctor_findings(None, loaded.settings, loaded,  # type: ignore[arg-type]
                               collect=lambda kube, ns: scaled_backend_snapshot())
    checks = lead_with_cause(verify_checks(), findings)
    lead, *rest = checks
    assert lead.name == CAUSE and lead.verdict is Verdict.FAIL
    assert lead.evidence.startswith("the doctor: Deployment todo-chatbot-backend has 0 replicas")
    assert lead.evidence.endswith("The 3 failed check(s) below follow from it")
    assert "`inv deploy`" in lead.fix and "--replicas=2" in lead.fix
    folded = [c for c in rest if c.verdict is Verdict.FAIL]
    assert [c.name for c in folded] == ["signup", "backend-readiness", "image-identity"]
    assert all(c.evidence.startswith(KNOCK_ON) and c.fix == "" for c in folded)
    assert rest[0] == verify_checks()[0]  # a pass is left as it was
    message = failure_message(GateResult("verify", checks))
    assert message.splitlines() == [
        ("verify gate failed: the doctor: Deployment todo-chatbot-backend has 0 replicas; "
         "the backend is down"),
        f"Fix: {lead.fix}",
        "Failed because of it: signup, backend-readiness, image-identity",
    ]


def test_without_a_cause_the_failed_checks_stand_as_they_are() -> None:
    from todo_deploy.gates import GateResult
    from todo_deploy.pipeline.conductor import verify_failure_message as failure_message
    from todo_deploy.stages.verify.stage import lead_with_cause

    assert lead_with_cause(verify_checks(), []) == verify_checks()
    assert failure_message(GateResult("verify", verify_checks())) == ""


def test_the_frontends_error_banner_names_its_error_page() -> None:
    """The 503 of a sign-up with the backend down is the sign-up page with a banner: its
    title ("Create your account") would say nothing of what went wrong."""
    import httpx

    from todo_deploy.stages.verify.client import body_excerpt

    page = ('<!doctype html><html><head><title>Create your account · Todo Chat</title></head>'
            '<body><div class="banner banner-error" role="alert">\n<strong>Service unreachable.'
            '</strong> The task service is unreachable right now.\n</div>'
            '<p id="task-error" role="alert" hidden></p></body></html>')
    assert body_excerpt(httpx.Response(503, text=page)) == (
        "(the frontend's error page: Service unreachable. The task service is unreachable "
        "right now.)")
