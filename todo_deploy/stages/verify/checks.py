"""The end-to-end checks: each a function of a `VerifyContext` returning Checks.

The journey and isolation checks need only the frontend's URL (tests run them
against the real apps started locally); the cluster checks also need a `Kube`.
Test users are created lazily by whichever check needs them first, so any
subset of checks can run on its own (`--only`).

Order matters and is fixed by CHECKS: the snapshot checks (readiness, restarts,
image identity, Pod Security) run before the disruptive ones (self-healing,
persistence), which delete pods.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx  # noqa: TID253 - the verify stage is loaded only when it runs (pipeline registry)

from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.chart.values import app_labels
from todo_deploy.components import ALL, BUILT_NAMES, BY_LABEL
from todo_deploy.gates import Check, Verdict
from todo_deploy.kube import label_selector, restarted_containers, runs_image
from todo_deploy.kube.pod_security import pss_violations
from todo_deploy.release.live_update import dev_note
from todo_deploy.stages.verify.client import (
    FrontendClient,
    FrontendError,
    body_excerpt,
    wait_until_up,
)

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings
    from todo_deploy.kube import Kube

USER_PREFIX = "verify-"
USERNAME_RE = re.compile(r"^verify-[a-z]-[0-9a-f]{6}$")
COMPONENTS = tuple(c.workload for c in ALL.values())  # backend, frontend, postgres
SELF_HEAL_DEADLINE_S = 60.0
RESTART_DEADLINE_S = 150.0
LOAD_INTERVAL_S = 0.05


# ---------------------------------------------------------------------------------
# The context every check receives
# ---------------------------------------------------------------------------------


@dataclass
class VerifyContext:
    settings: Settings
    base_url: str
    kube: Kube | None = None
    images: dict[str, ImageRef] = field(default_factory=dict)
    log: Callable[[str], None] = print
    # Removes the given test users from the database; returns evidence. None: not possible.
    remove_users: Callable[[list[str]], str] | None = None
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    clients: dict[str, FrontendClient] = field(default_factory=dict)
    created_tasks: dict[str, set[int]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # Restarts before this (the deployment's gate) are a node's reboot or an old crash.
    restarts_since: datetime | None = None
    host: str = ""  # through an Ingress: its host (access.AccessPlan.host)

    def username(self, label: str) -> str:
        return f"{USER_PREFIX}{label}-{self.suffix}"

    def new_client(self) -> FrontendClient:
        return FrontendClient(self.base_url, host=self.host)

    def user(self, label: str) -> FrontendClient:
        """The signed-in client of test user `label` ("a", "b"), signed up on first use."""
        if label in self.clients:
            return self.clients[label]
        client = self.new_client()
        name = self.username(label)
        response = client.signup(name, self.password)
        if response.status_code != 303:
            client.close()
            raise FrontendError(f"sign-up of {name}", response)
        self.clients[label] = client
        self.created_tasks.setdefault(label, set())
        return client

    def create_task(self, label: str, title: str, description: str | None = None) -> dict:
        response = self.user(label).create_task(title, description)
        if response.status_code != 201:
            raise FrontendError(f"POST /api/tasks as {self.username(label)}", response)
        task: dict[str, Any] = response.json()
        self.created_tasks[label].add(int(task["id"]))
        return task

    def probe_task(self) -> dict[str, Any]:
        """A task of user A that user B must neither see nor change."""
        if "probe" not in self.notes:
            self.notes["probe"] = self.create_task(
                "a", f"verify isolation probe {self.suffix}", "belongs to user A"
            )
        return self.notes["probe"]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


CheckFn = Callable[[VerifyContext], list[Check]]


def _fmt(response: httpx.Response) -> str:
    return str(response.status_code)


# ---------------------------------------------------------------------------------
# The person's journey, through the frontend only
# ---------------------------------------------------------------------------------


def check_frontend_page(ctx: VerifyContext) -> list[Check]:
    with ctx.new_client() as client:
        response = client.page("/")
        html = response.text
        has_form = (
            "<form" in html
            and 'name="username"' in html
            and 'name="password"' in html
            and 'name="csrf_token"' in html
            and ('action="/login"' in html or 'action="/signup"' in html)
        )
        ok = response.status_code == 200 and has_form
        evidence = (
            f"GET {ctx.base_url}/ -> {response.status_code}, "
            f"{'sign-in form with CSRF field present' if has_form else 'no sign-in form found'}"
        )
    return [
        Check.of(
            "frontend-page",
            ok,
            evidence,
            "Check the frontend pods' logs (`kubectl logs -l app.kubernetes.io/component="
            "frontend`) and that BACKEND_URL points at the backend Service.",
        )
    ]


def check_signup(ctx: VerifyContext) -> list[Check]:
    a, b = ctx.user("a"), ctx.user("b")
    sessions = [a.session(), b.session()]
    signed_in = all(s.get("authenticated") for s in sessions)
    names_ok = [s.get("username") for s in sessions] == [ctx.username("a"), ctx.username("b")]
    with ctx.new_client() as other:
        taken = other.signup(ctx.username("a"), "another-password-123")
        wrong = other.login(ctx.username("a"), "not-the-password-123")
        right = other.login(ctx.username("a"), ctx.password)
    ok = (
        signed_in
        and names_ok
        and taken.status_code == 409
        and wrong.status_code == 401
        and right.status_code == 303
    )
    evidence = (
        f"signed up {ctx.username('a')} and {ctx.username('b')} (303, session authenticated="
        f"{signed_in}); same name again -> {_fmt(taken)} (want 409); wrong password -> "
        f"{_fmt(wrong)} (want 401); right password -> {_fmt(right)} (want 303)"
    )
    return [Check.of("signup", ok, evidence, "Check the backend's /api/auth routes and its logs.")]


def check_task_journey(ctx: VerifyContext) -> list[Check]:
    a = ctx.user("a")
    steps: list[str] = []
    problems: list[str] = []

    def expect(what: str, response: httpx.Response, status: int) -> Any:
        steps.append(f"{what} {response.status_code}")
        if response.status_code != status:
            problems.append(f"{what} -> {response.status_code} (want {status})")
            return None
        return response.json() if response.content else {}

    first = ctx.create_task("a", f"verify journey one {ctx.suffix}", "first")
    second = ctx.create_task("a", f"verify journey two {ctx.suffix}")
    steps.append("create x2 201")
    listed = expect("list", a.list_tasks(), 200)
    if listed is not None:
        ids = {t["id"] for t in listed.get("items", [])}
        if not {first["id"], second["id"]} <= ids:
            problems.append("list misses a created task")
        if int(listed.get("total", -1)) < 2:
            problems.append(f"list total {listed.get('total')} < 2")
    new_title = f"verify journey one edited {ctx.suffix}"
    edited = expect("edit", a.update_task(first["id"], title=new_title), 200)
    if edited is not None and edited.get("title") != new_title:
        problems.append(f"edit returned title {edited.get('title')!r}")
    fetched = expect("get", a.get_task(first["id"]), 200)
    if fetched is not None and fetched.get("title") != new_title:
        problems.append("edit did not persist")
    done = expect("complete", a.complete_task(first["id"]), 200)
    if done is not None and done.get("completed") is not True:
        problems.append("complete did not set completed=true")
    undone = expect("reopen", a.complete_task(first["id"], completed=False), 200)
    if undone is not None and undone.get("completed") is not False:
        problems.append("completed=false did not reopen the task")
    expect("complete again", a.complete_task(first["id"], completed=True), 200)
    completed = expect("list completed", a.list_tasks(status="completed"), 200)
    if completed is not None and first["id"] not in {t["id"] for t in completed["items"]}:
        problems.append("the completed filter misses the completed task")
    deleted = a.delete_task(second["id"])
    steps.append(f"delete {deleted.status_code}")
    if deleted.status_code not in (200, 204):
        problems.append(f"delete -> {deleted.status_code}")
    else:
        ctx.created_tasks["a"].discard(int(second["id"]))
    gone = a.get_task(second["id"])
    steps.append(f"get deleted {gone.status_code}")
    if gone.status_code != 404:
        problems.append(f"deleted task still answers {gone.status_code}")
    evidence = ", ".join(steps) + (f"; problems: {'; '.join(problems)}" if problems else "")
    return [
        Check.of(
            "task-journey",
            not problems,
            evidence,
            "Reproduce the failing step in the UI; read the backend logs for that request.",
        )
    ]


def _tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    calls = body.get("tool_calls") or []
    return [c for c in calls if isinstance(c, dict)]


def check_chat(ctx: VerifyContext) -> list[Check]:
    a = ctx.user("a")
    before = {t["id"] for t in a.all_tasks()}
    response = a.chat("add a task to buy milk")
    if response.status_code != 200:
        return [
            Check.of(
                "chat-adds-task",
                False,
                f"POST /api/chat -> {response.status_code} {body_excerpt(response)}",
                "Check the backend's agent settings (LLM_PROVIDER, OPENAI_API_KEY) and logs.",
            )
        ]
    body = response.json()
    names = [str(c.get("name")) for c in _tool_calls(body)]
    after = a.all_tasks()
    new = [t for t in after if t["id"] not in before]
    for task in new:
        ctx.created_tasks["a"].add(int(task["id"]))
    milk = [t for t in new if "milk" in str(t.get("title", "")).lower()]
    ok = "add_task" in names and bool(milk) and bool(body.get("conversation_id"))
    evidence = (
        f"tool_calls {names or 'none'}; response {str(body.get('response', ''))[:80]!r}; "
        f"new task(s) in the list: {[t.get('title') for t in new] or 'none'}"
    )
    return [
        Check.of(
            "chat-adds-task",
            ok,
            evidence,
            "The agent must call add_task; with an LLM key set, check the model supports "
            "tool calls (or set LLM_PROVIDER=offline).",
        )
    ]


def _same(task: dict[str, Any], other: dict[str, Any] | None) -> bool:
    if other is None:
        return False
    keys = ("id", "title", "description", "completed", "updated_at")
    return all(task.get(k) == other.get(k) for k in keys)


def _as_owner(ctx: VerifyContext, task_id: int) -> dict[str, Any] | None:
    response = ctx.user("a").get_task(task_id)
    return response.json() if response.status_code == 200 else None


def _leaks(task: dict[str, Any], probe: dict[str, Any]) -> bool:
    """Is this task A's (its title or owner), seen by B?"""
    owner = probe.get("user_id")
    return task.get("title") == probe.get("title") or (owner is not None and task.get("user_id") == owner)


def check_isolation_rest(ctx: VerifyContext) -> list[Check]:
    """B, through the frontend, can neither see nor touch A's task. Task numbers are per
    user, so B's request for A's number may reach a task of B's own: what must hold is
    that no answer carries A's task and A's task is unchanged afterwards."""
    probe = ctx.probe_task()
    b = ctx.user("b")
    a_count = len(ctx.user("a").all_tasks())
    seen = [t for t in b.all_tasks() if _leaks(t, probe)]
    tid = probe["id"]
    attempts = {
        "GET": b.get_task(tid),
        "PUT": b.update_task(tid, title="changed by user B"),
        "PATCH": b.complete_task(tid, completed=True),
        "DELETE": b.delete_task(tid),
    }
    codes = {verb: r.status_code for verb, r in attempts.items()}
    leaked = [verb for verb, r in attempts.items()
              if r.status_code == 200 and r.content and _leaks(r.json(), probe)]
    foreign_ok = all(code in (404, 200, 204) for code in codes.values())
    after = _as_owner(ctx, tid)
    unchanged = _same(probe, after)
    ok = not seen and not leaked and foreign_ok and unchanged
    evidence = (
        f"B lists {len(seen)} of A's {a_count} task(s); B's requests for #{tid}: "
        + ", ".join(f"{v} {c}" for v, c in codes.items())
        + (f"; A's task in the answer to {leaked}" if leaked else "; none answered with A's task")
        + f"; A's task {'unchanged' if unchanged else 'CHANGED or gone'}"
    )
    return [
        Check.of(
            "isolation-rest",
            ok,
            evidence,
            "Every task query must filter by the authenticated user id; another user's task "
            "must never be read or changed.",
        )
    ]


def check_isolation_chat(ctx: VerifyContext) -> list[Check]:
    probe = ctx.probe_task()
    tid = probe["id"]
    b = ctx.user("b")
    replies = []
    leaked = []
    for message in (f"delete task {tid}", f"complete task {tid}", "show my tasks"):
        response = b.chat(message)
        replies.append(f"{message!r} -> {response.status_code}")
        if response.status_code == 200:
            body = response.json()
            text = str(body.get("response", "")) + repr(_tool_calls(body))
            if probe["title"] in text:
                leaked.append(message)
    after = _as_owner(ctx, tid)
    unchanged = _same(probe, after)
    ok = unchanged and not leaked
    evidence = (
        "; ".join(replies)
        + f"; A's task #{tid} {'unchanged' if unchanged else 'CHANGED or gone'}"
        + (f"; A's title leaked in replies to {leaked}" if leaked else "; nothing of A's leaked")
    )
    return [
        Check.of(
            "isolation-chat",
            ok,
            evidence,
            "The MCP tools must scope every query to the caller's user_id, never the message's.",
        )
    ]


# ---------------------------------------------------------------------------------
# Live cluster state (read through the API)
# ---------------------------------------------------------------------------------


def _skip_without_cluster(ctx: VerifyContext, name: str) -> list[Check] | None:
    if ctx.kube is None:
        return [Check(name, Verdict.SKIP, "no cluster connection")]
    return None


def _selector(settings: Settings) -> str:
    try:
        labels = app_labels(settings)
    except (ImportError, NotImplementedError):
        labels = {"app.kubernetes.io/instance": settings.release_name}
    return label_selector(labels)


def component_of(settings: Settings, pod: dict[str, Any]) -> str | None:
    """backend / frontend / postgres for the app's long-running pods, else None (Jobs, tests)."""
    meta = pod.get("metadata", {})
    owners = meta.get("ownerReferences") or []
    if any(o.get("kind") in ("Job", "CronJob") for o in owners) or not owners:
        return None
    label = (meta.get("labels") or {}).get("app.kubernetes.io/component")
    if label in BY_LABEL:
        return BY_LABEL[label].workload
    for component in COMPONENTS:
        if meta.get("name", "").startswith(f"{settings.release_name}-{component}-"):
            return component
    return None


def app_pods(ctx: VerifyContext, include_terminating: bool = False) -> dict[str, list[dict]]:
    assert ctx.kube is not None
    pods = ctx.kube.list("v1", "Pod", ctx.settings.namespace, _selector(ctx.settings))
    grouped: dict[str, list[dict]] = {c: [] for c in COMPONENTS}
    for pod in pods:
        component = component_of(ctx.settings, pod)
        if component is None:
            continue
        if pod["metadata"].get("deletionTimestamp") and not include_terminating:
            continue
        grouped[component].append(pod)
    return grouped


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _workloads(settings: Settings) -> dict[str, tuple[str, str]]:
    """Component -> (kind, name) of the app's workloads, as the chart names them
    (a long release name cuts the StatefulSet's)."""
    return {
        BY_LABEL[o["metadata"]["labels"]["app.kubernetes.io/component"]].workload: (
            o["kind"], o["metadata"]["name"])
        for o in manifests.render_manifests(settings, chart_values.default_images())
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def _desired(ctx: VerifyContext, component: str) -> int:
    assert ctx.kube is not None
    kind, name = _workloads(ctx.settings)[component]
    obj = ctx.kube.get("apps/v1", kind, name, ctx.settings.namespace)
    if obj is None:
        raise RuntimeError(f"{kind}/{name} not found in namespace {ctx.settings.namespace}")
    return int((obj.get("spec") or {}).get("replicas", 1))


def check_backend_readiness(ctx: VerifyContext) -> list[Check]:
    if skipped := _skip_without_cluster(ctx, "backend-readiness"):
        return skipped
    pods = app_pods(ctx)["backend"]
    desired = _desired(ctx, "backend")
    not_ready = [p["metadata"]["name"] for p in pods if not pod_ready(p)]
    ok = len(pods) >= desired and not not_ready and desired > 0
    evidence = (
        f"{len(pods) - len(not_ready)}/{desired} backend pods Ready (readiness GET /ready)"
        + (f"; not Ready: {', '.join(not_ready)}" if not_ready else "; 0 failing readiness")
    )
    return [
        Check.of(
            "backend-readiness",
            ok,
            evidence,
            "`inv aiops doctor` names the cause (or `kubectl describe pod` the backend): /ready "
            "fails when the database is unreachable or migrations are not at head.",
        )
    ]


def check_no_restarts(ctx: VerifyContext) -> list[Check]:
    if skipped := _skip_without_cluster(ctx, "no-restarts"):
        return skipped
    every = [pod for pods in app_pods(ctx).values() for pod in pods]
    total = sum(len((pod.get("status") or {}).get("containerStatuses") or []) for pod in every)
    restarted, earlier = restarted_containers(every, ctx.restarts_since)
    ok = total > 0 and not restarted
    evidence = f"{total} container(s), restarts: {', '.join(restarted) if restarted else 'none'}"
    if earlier:
        evidence += "; not counted, before the deployment: " + ", ".join(earlier)
    return [
        Check.of(
            "no-restarts",
            ok,
            evidence,
            "Read the previous instance's logs: `kubectl logs <pod> -c <container> --previous`.",
        )
    ]


def check_image_identity(ctx: VerifyContext) -> list[Check]:
    if skipped := _skip_without_cluster(ctx, "image-identity"):
        return skipped

    if not ctx.images:
        return [
            Check.of(
                "image-identity",
                False,
                "no built images recorded (.state/images.json)",
                "Run `inv build`, then `inv deploy`.",
            )
        ]
    problems, seen, unstarted, absent, dev = [], 0, [], [], []
    pods = app_pods(ctx)
    for component in BUILT_NAMES:
        ref = ctx.images.get(component)
        if ref is None:
            problems.append(f"no built {component} image recorded")
            continue
        if not pods[component]:
            absent.append(component)
            problems.append(f"no {component} pods")
        for pod in pods[component]:
            if note := dev_note(pod):  # its code is not (only) the image's: issue 24
                dev.append(f"{pod['metadata']['name']} {note}")
            statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
            for container in pod["spec"]["containers"]:
                status = statuses.get(container["name"], {})
                name = f"{pod['metadata']['name']}/{container['name']}"
                runs = runs_image(status, ref.image_id)
                if runs is False and ref.digest:  # pulled from the registry: its digest
                    runs = runs_image(status, ref.digest)
                if container.get("image") != ref.ref:
                    problems.append(f"{name} runs {container.get('image')} (built {ref.ref})")
                elif runs is None:
                    unstarted.append(name)
                    continue
                elif not runs:
                    problems.append(f"{name} imageID {status['imageID']} != built {ref.image_id}")
                seen += 1
    ok = seen > 0 and not problems and not dev
    built = ", ".join(f"{c} {r.ref} ({r.image_id[:19]})" for c, r in sorted(ctx.images.items()))
    evidence = (
        f"{seen} container(s) checked against {built}"
        + (f"; problems: {'; '.join(problems)}" if problems else "; all match" if not dev else "")
        + (f"; dev pods (live update): {'; '.join(dev)}" if dev else "")
        + (f"; not started yet, not counted: {', '.join(unstarted)}" if unstarted else "")
    )
    fix = (DEV_PODS_FIX if dev and not problems
           else image_identity_fix(absent, stale=len(problems) > len(absent)))
    return [Check.of("image-identity", ok, evidence, fix)]


DEV_PODS_FIX = "run `inv up` (or `inv deploy`) to return to the built images"


def image_identity_fix(absent: list[str], stale: bool) -> str:
    """A stale image only when a pod runs one; no pods at all is another problem."""
    if stale or not absent:
        return "A stale image is running: re-run `inv build` then `inv deploy` (tags follow content)."
    return (f"No {' or '.join(absent)} pod runs, so no image could be compared: `inv aiops doctor` "
            "names why (scaled to 0?); `inv deploy` applies the configured replicas.")


def restricted_problems(pod: dict[str, Any]) -> list[str]:
    """Pod Security "restricted" violations of one live pod (the API's JSON), by the lint
    stage's checker: the same rules the manifests were held to before the deploy."""
    return pss_violations({**pod, "kind": "Pod"})


def check_pod_security(ctx: VerifyContext) -> list[Check]:
    if skipped := _skip_without_cluster(ctx, "pod-security"):
        return skipped
    problems: list[str] = []
    count = 0
    for pods in app_pods(ctx).values():
        for pod in pods:
            count += 1
            problems.extend(restricted_problems(pod))
    ok = count > 0 and not problems
    evidence = f"{count} live pod(s) checked against Pod Security 'restricted'" + (
        f"; violations: {'; '.join(problems[:8])}" if problems else "; all comply"
    )
    return [
        Check.of(
            "pod-security",
            ok,
            evidence,
            "Set runAsNonRoot, allowPrivilegeEscalation: false, capabilities.drop [ALL] and "
            "seccompProfile RuntimeDefault on every container (k8s/ and the chart).",
        )
    ]


# ---------------------------------------------------------------------------------
# Disruptive checks: they delete pods
# ---------------------------------------------------------------------------------


class LoadThread(threading.Thread):
    """Issues GET /api/tasks through the frontend every ~50 ms and counts failures."""

    def __init__(self, client: FrontendClient, interval: float = LOAD_INTERVAL_S) -> None:
        super().__init__(name="verify-load", daemon=True)
        self.client = client
        self.interval = interval
        self.halt = threading.Event()
        self.ok = 0
        self.failed: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                response = self.client.list_tasks(limit=5)
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                self.failed.append(type(exc).__name__)
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)
        self.client.close()


def _wait(predicate: Callable[[], bool], deadline: float, poll: float = 0.5) -> bool:
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def check_self_healing(ctx: VerifyContext) -> list[Check]:
    if skipped := _skip_without_cluster(ctx, "self-healing"):
        return skipped
    desired = _desired(ctx, "backend")
    before = [p for p in app_pods(ctx)["backend"] if pod_ready(p)]
    if not before:
        return [Check.of("self-healing", False, "no Ready backend pod to delete", "Run inv deploy.")]
    victim = min(before, key=lambda p: p["metadata"]["name"])
    healing = _delete_under_load(ctx, victim, {p["metadata"]["uid"] for p in before}, desired)
    failures = len(healing.load_failed)
    kinds = sorted(set(healing.load_failed))
    evidence = (
        f"deleted {victim['metadata']['name']}; replacement {healing.replacement or 'none'} "
        f"Ready and {desired}/{desired} replicas back: {'yes' if healing.replaced else 'NO'} "
        f"(old pod gone: {'yes' if healing.gone else 'no'}) in {healing.elapsed:.1f}s; load: "
        f"{healing.load_ok} ok, {failures} failed {kinds if kinds else ''}".rstrip()
    )
    return [_self_healing_check(evidence, healing.replaced, desired, failures)]


@dataclass(frozen=True)
class _Healing:
    """What deleting a backend pod under load showed."""

    replaced: bool  # a new pod Ready and the desired count back
    gone: bool  # the deleted pod no longer exists
    elapsed: float
    replacement: str  # the new pod's name, '' when none came
    load_ok: int
    load_failed: list[str]


def _delete_under_load(ctx: VerifyContext, victim: dict[str, Any], old_uids: set[str],
                       desired: int) -> _Healing:
    """Delete `victim` while a user's requests keep going; wait for a Ready replacement."""
    assert ctx.kube is not None
    kube, ns = ctx.kube, ctx.settings.namespace
    victim_name, victim_uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    load = LoadThread(ctx.user("a").clone())
    load.start()
    started = time.monotonic()
    try:
        time.sleep(1.0)  # a baseline under load before the disruption
        kube.delete("v1", "Pod", victim_name, ns)
        deadline = started + SELF_HEAL_DEADLINE_S
        replacement: dict[str, str] = {}

        def healed() -> bool:
            pods = app_pods(ctx)["backend"]
            ready = [p for p in pods if pod_ready(p)]
            new = [p for p in ready if p["metadata"]["uid"] not in old_uids]
            if new:
                replacement["name"] = new[0]["metadata"]["name"]
            return bool(new) and len(ready) >= desired

        def victim_gone() -> bool:
            pod = kube.get("v1", "Pod", victim_name, ns)
            return pod is None or pod["metadata"]["uid"] != victim_uid

        replaced = _wait(healed, deadline)
        gone = replaced and _wait(victim_gone, deadline)
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # keep the load on after the replacement turned Ready
    finally:
        load.stop()
    return _Healing(replaced, gone, elapsed, replacement.get("name", ""), load.ok, load.failed)


def _self_healing_check(evidence: str, replaced: bool, desired: int, failures: int) -> Check:
    """Replaced in time, and (with 2+ replicas) not one request failed meanwhile."""
    if not replaced:
        return Check.of(
            "self-healing",
            False,
            evidence,
            "The Deployment did not replace the pod in time: `kubectl describe deploy`, events.",
        )
    if desired < 2:
        verdict = Verdict.PASS if failures == 0 else Verdict.WARN
        return Check(
            "self-healing",
            verdict,
            evidence + " (1 replica: some failed requests are expected)",
            "" if failures == 0 else "Run 2+ backend replicas (BACKEND_REPLICAS=2).",
        )
    return Check.of(
        "self-healing",
        failures == 0,
        evidence,
        "Requests failed while a pod was replaced: readiness must fail first on SIGTERM and "
        "the pod keep serving for DRAIN_SECONDS (terminationGracePeriodSeconds > drain).",
    )


def _relogin(ctx: VerifyContext, label: str) -> tuple[FrontendClient, bool]:
    """The user's client after a restart; True when the session cookie still worked."""
    client = ctx.user(label)
    for attempt in range(20):
        try:
            response = client.list_tasks(limit=1)
        except httpx.HTTPError:
            time.sleep(1.0)
            continue
        if response.status_code == 200:
            return client, True
        if response.status_code == 401:
            login = client.login(ctx.username(label), ctx.password)
            if login.status_code == 303:
                return client, False
        time.sleep(1.0 if attempt < 19 else 0)
    raise FrontendError(f"{ctx.username(label)} cannot use the app after the restart")


def check_persistence(ctx: VerifyContext) -> list[Check]:
    if skipped := _skip_without_cluster(ctx, "persistence"):
        return skipped
    marker = ctx.create_task("a", f"verify persistence {ctx.suffix}", "written before the restart")
    before_ids = {int(t["id"]) for t in ctx.user("a").all_tasks()}
    workloads = _workloads(ctx.settings)
    restarted, back, restart_s = _restart_all(ctx, workloads)
    if not back:
        return [
            Check.of(
                "persistence",
                False,
                f"deleted {restarted} pod(s); not all replaced and Ready within "
                f"{RESTART_DEADLINE_S:.0f}s",
                "`kubectl get pods` and events: a restarted pod did not become Ready.",
            )
        ]
    up, how = wait_until_up(ctx.base_url, deadline_s=60, host=ctx.host)
    if not up:
        return [Check.of("persistence", False, f"frontend not answering after restart: {how}")]
    a, survived = _relogin(ctx, "a")
    after = a.all_tasks()
    after_ids = {int(t["id"]) for t in after}
    still = next((t for t in after if t["id"] == marker["id"]), None)
    _, b_ok = _relogin(ctx, "b")
    ok = still is not None and still.get("title") == marker["title"] and before_ids <= after_ids
    evidence = (
        f"restarted {restarted} pod(s) ({', '.join(sorted(workloads))}) in {restart_s:.0f}s; "
        f"A's {len(before_ids)} task(s) {'all still there' if before_ids <= after_ids else 'MISSING'}"
        f" (marker #{marker['id']} {'present' if still else 'GONE'}); session cookie "
        f"{'survived' if survived else 'did not survive (signed in again)'}; "
        f"user B {'session survived' if b_ok else 'signed in again'}"
    )
    return [
        Check.of(
            "persistence",
            ok,
            evidence,
            "Data must live in PostgreSQL on a PersistentVolumeClaim (bundled) or the external DB.",
        )
    ]


def _restart_all(ctx: VerifyContext,
                 workloads: dict[str, tuple[str, str]]) -> tuple[int, bool, float]:
    """Delete every pod of `workloads` at once and wait until each is replaced by a Ready pod:
    (pods deleted, whether all came back in time, seconds taken)."""
    assert ctx.kube is not None
    kube, ns = ctx.kube, ctx.settings.namespace
    pods = app_pods(ctx)
    victims = [p for c in workloads for p in pods[c]]
    old_uids = {p["metadata"]["uid"] for p in victims}
    desired = {c: _desired(ctx, c) for c in workloads}
    started = time.monotonic()
    for pod in victims:
        kube.delete("v1", "Pod", pod["metadata"]["name"], ns)

    def all_new_and_ready() -> bool:
        now = app_pods(ctx, include_terminating=True)
        for component in workloads:
            current = now[component]
            if any(p["metadata"]["uid"] in old_uids for p in current):
                return False
            if len([p for p in current if pod_ready(p)]) < desired[component]:
                return False
        return True

    back = _wait(all_new_and_ready, started + RESTART_DEADLINE_S, poll=1.0)
    return len(victims), back, time.monotonic() - started


# ---------------------------------------------------------------------------------
# Cleanup: always last
# ---------------------------------------------------------------------------------


def check_cleanup(ctx: VerifyContext) -> list[Check]:
    if not ctx.clients:
        return [Check("cleanup", Verdict.PASS, "no test users were created")]
    deleted, problems = 0, []
    for label, client in ctx.clients.items():
        try:
            remaining = client.all_tasks()
        except (FrontendError, httpx.HTTPError) as exc:
            problems.append(f"{ctx.username(label)}: cannot list tasks ({exc})")
            continue
        for task in remaining:  # every task of a test user is a test task
            response = client.delete_task(task["id"])
            if response.status_code in (200, 204, 404):
                deleted += 1
            else:
                problems.append(f"task #{task['id']}: DELETE -> {response.status_code}")
        client.logout()
    names = [ctx.username(label) for label in ctx.clients]
    if ctx.remove_users is None:
        users = f"users {', '.join(names)} remain (no database access in this mode)"
        verdict = Verdict.WARN
    else:
        try:
            users = ctx.remove_users(names)
            verdict = Verdict.PASS
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            users = f"users {', '.join(names)} NOT removed: {exc}"
            verdict = Verdict.WARN
    if problems:
        verdict = Verdict.WARN
    evidence = f"deleted {deleted} test task(s) through the API; {users}" + (
        f"; problems: {'; '.join(problems)}" if problems else ""
    )
    fix = "" if verdict is Verdict.PASS else "Remove the verify-* users by hand if needed."
    return [Check("cleanup", verdict, evidence, fix)]


# ---------------------------------------------------------------------------------
# The registry: names for --only / --skip, in the order they run
# ---------------------------------------------------------------------------------

CHECKS: dict[str, CheckFn] = {
    "frontend-page": check_frontend_page,
    "signup": check_signup,
    "task-journey": check_task_journey,
    "chat-adds-task": check_chat,
    "isolation-rest": check_isolation_rest,
    "isolation-chat": check_isolation_chat,
    "backend-readiness": check_backend_readiness,
    "no-restarts": check_no_restarts,
    "image-identity": check_image_identity,
    "pod-security": check_pod_security,
    "self-healing": check_self_healing,
    "persistence": check_persistence,
    "cleanup": check_cleanup,
}
CHECK_NAMES = tuple(CHECKS)


class SelectionError(ValueError):
    """An unknown check name in --only/--skip."""


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def select_checks(only: str | None = None, skip: str | None = None) -> list[str]:
    """The check names to run, in run order. `cleanup` runs unless skipped by name."""
    wanted, skipped = _names(only), _names(skip)
    unknown = [n for n in wanted + skipped if n not in CHECKS]
    if unknown:
        raise SelectionError(
            f"unknown check(s): {', '.join(unknown)}; known: {', '.join(CHECK_NAMES)}"
        )
    chosen = [n for n in CHECK_NAMES if not wanted or n in wanted or n == "cleanup"]
    return [n for n in chosen if n not in skipped]


def run_checks(ctx: VerifyContext, names: list[str]) -> list[Check]:
    """Run the named checks in order; an exception becomes that check's failure."""
    results: list[Check] = []
    for name in names:
        ctx.log(f"verify: {name} ...")
        started = time.monotonic()
        try:
            checks = CHECKS[name](ctx)
        except Exception as exc:  # noqa: BLE001 - a crashed check is a failed check
            checks = [
                Check.of(
                    name,
                    False,
                    f"{type(exc).__name__}: {exc}"[:400],
                    "Read the evidence; re-run with --only " + name + ".",
                )
            ]
        for check in checks:
            ctx.log(f"verify: {check.name}: {check.verdict.value} ({time.monotonic() - started:.1f}s)")
        results.extend(checks)
    return results
