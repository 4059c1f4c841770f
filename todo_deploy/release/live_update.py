"""Live update (issue 24): a saved source file synced into the running dev pods, no image
built and no pod replaced.

A deploy in dev mode (`inv watch --dev`, `inv up --dev`: the chart's `dev.enabled`) gives the
backend and frontend pods a writable copy of the image's /opt/app (an emptyDir seeded from
the image) and a supervisor (todo_serving.devloop) that restarts the app process in place
on SIGHUP, keeping the listening socket. Here: which saved paths can be synced (the apps'
packages, migrations aside) and which fall back to the rebuild-and-roll, and why; the
`todo_serving.devsync` command for the files, run through the Kubernetes API (exec) in
every Ready pod of the component at once; its one JSON line read back; a pod that took the
code annotated `todo-chatbot/dev-code: GENERATION`. What `inv status` and verify say about
dev pods (`dev_note`) is here too, so both say it the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy.chart.values import app_labels
from todo_deploy.components import BACKEND, BUILT
from todo_deploy.kube import Kube, exec_in_pod, label_selector

if TYPE_CHECKING:
    from todo_deploy.config import Settings

DEV_LABEL = "todo-chatbot/dev"  # on the pod template of a dev-mode deploy
DEV_CODE = "todo-chatbot/dev-code"  # on a pod, after a sync: the generation it serves
APP_ROOT = "/opt/app"  # where the image keeps the app's packages (PYTHONPATH)
MAX_ENTRY_BYTES = 120_000  # one argv entry, as devsync takes it: exec is not for large files
SYNC_TIMEOUT_S = 40.0  # devsync waits up to 20 s for the new process
COMPONENT_LABEL = "app.kubernetes.io/component"

# The apps' packages (relative to the source root) -> the components whose pods run them;
# todo_serving is in both images.
PACKAGES: dict[str, tuple[str, ...]] = {
    "app/backend/todo_api": ("backend",),
    "app/frontend/todo_web": ("frontend",),
    "app/common/todo_serving": ("backend", "frontend"),
}
MIGRATIONS = f"{BACKEND.context}/{BACKEND.migrations}"
DEPENDENCY_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
# Never synced, never a reason to rebuild: editor droppings and caches.
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".tmp", "~", ".db", ".db-journal")
IGNORED_PARTS = frozenset({"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                           "node_modules", ".venv", ".state"})

Exec = Callable[[str, str, list[str]], tuple[int | None, str, str]]  # pod, container, argv


class TooLarge(ValueError):
    """A file whose argv entry would pass MAX_ENTRY_BYTES: it is not synced."""


# ---- what a save can carry -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fallback:
    path: str  # relative to the source root
    reason: str  # "dependencies changed: requirements.txt", "Dockerfile", "migrations", ...


@dataclass
class Plan:
    """One save, classified: what to sync where, and what needs the rebuild-and-roll."""

    # component -> path under /opt/app (e.g. todo_api/routes/tasks.py) -> the local file
    files: dict[str, dict[str, Path]] = field(default_factory=dict)
    fallbacks: list[Fallback] = field(default_factory=list)

    @property
    def syncable(self) -> bool:
        """Only synced files: no fallback, something to sync."""
        return bool(self.files) and not self.fallbacks

    def reasons(self) -> str:
        return "; ".join(f"{f.path} ({f.reason})" for f in self.fallbacks)


def ignored(path: Path) -> bool:
    return path.name.endswith(IGNORED_SUFFIXES) or bool(IGNORED_PARTS & set(path.parts))


def fallback_reason(relative: str, chart: str = "helm/todo-chatbot") -> str:
    """Why a saved path (relative to the source root) cannot be synced ("" when it can)."""
    name = relative.rsplit("/", 1)[-1]
    if name.startswith("requirements") or name in DEPENDENCY_FILES:
        return f"dependencies changed: {name}"
    if name.startswith(".env") or relative.startswith("profiles/"):
        return "settings"
    if relative == chart or relative.startswith(chart + "/"):
        return "chart"
    if relative.startswith("docker/") or name.endswith(".Dockerfile") or name == ".dockerignore":
        return "Dockerfile"
    if relative == MIGRATIONS or relative.startswith(MIGRATIONS + "/"):
        return "migrations"
    if not any(relative.startswith(package + "/") for package in PACKAGES):
        return "not in the apps' packages"
    return ""


def classify(paths: Iterable[Path], root: Path, chart_dir: Path | None = None) -> Plan:
    """Saved paths -> the files to sync per component and the fallbacks, with reasons."""
    plan = Plan()
    chart = _relative(chart_dir, root) if chart_dir is not None else "helm/todo-chatbot"
    for path in sorted(set(paths)):
        # A vanished file without a suffix is an editor's or `sed -i`'s temporary one.
        if ignored(path) or (not path.suffix and not path.exists()):
            continue
        relative = _relative(path, root)
        reason = fallback_reason(relative, chart)
        if reason:
            plan.fallbacks.append(Fallback(relative, reason))
            continue
        package = next(p for p in PACKAGES if relative.startswith(p + "/"))
        in_pod = relative[len(package.rsplit("/", 1)[0]) + 1:]  # e.g. todo_api/routes/tasks.py
        for component in PACKAGES[package]:
            plan.files.setdefault(component, {})[in_pod] = path
    return plan


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# ---- the devsync command ----------------------------------------------------------------------


def contents(files: dict[str, Path]) -> dict[str, bytes | None]:
    """path in the pod -> the file's bytes now (None: deleted since the save)."""
    return {name: (path.read_bytes() if path.is_file() else None) for name, path in files.items()}


def generation(every: Iterable[tuple[str, bytes | None]]) -> str:
    """A short hash of what is synced: the code version the pods report."""
    digest = hashlib.sha256()
    for name, data in sorted(every, key=lambda item: item[0]):
        digest.update(name.encode() + b"\0" + (b"-" if data is None else b"+" + data) + b"\0")
    return digest.hexdigest()[:12]


def entry(name: str, data: bytes | None) -> str:
    """One argv entry: PATH=base64(zlib(bytes)); PATH= deletes it."""
    if data is None:
        return f"{name}="
    blob = base64.b64encode(zlib.compress(data, 9)).decode()
    text = f"{name}={blob}"
    if len(text.encode()) > MAX_ENTRY_BYTES:
        raise TooLarge(f"{name} is too large to sync ({len(text.encode()) // 1000} KB encoded, "
                       f"the limit is {MAX_ENTRY_BYTES // 1000} KB)")
    return text


def sync_argv(gen: str, files: dict[str, bytes | None]) -> list[str]:
    """The exec's command: `python -m todo_serving.devsync GENERATION PATH=BLOB ...`."""
    return ["python", "-m", "todo_serving.devsync", gen,
            *(entry(name, data) for name, data in sorted(files.items()))]


# ---- one sync, in every Ready pod -------------------------------------------------------------------


@dataclass(frozen=True)
class PodResult:
    component: str
    pod: str
    ok: bool
    seconds: float = 0.0
    error: str = ""


def parse_result(component: str, pod: str, code: int | None, out: str, err: str) -> PodResult:
    """devsync's JSON line (the last one on stdout that parses); without one, its stderr."""
    for line in reversed(out.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict) and "ok" in found:
            ok = found.get("ok") is True and code in (0, None)
            return PodResult(component, pod, ok, float(found.get("seconds") or 0.0),
                             "" if ok else str(found.get("error") or f"exit code {code}"))
    last = " | ".join(line.strip() for line in (err or out).strip().splitlines()[-3:]) or "no output"
    return PodResult(component, pod, False, 0.0, f"devsync gave no result (exit code {code}): {last}")


def pod_ready(pod: dict[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_dev(pod: dict[str, Any]) -> bool:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(DEV_LABEL) == "true"


def ready_pods(kube: Kube, settings: Settings, component: str) -> list[dict[str, Any]]:
    """The component's Ready pods (not being deleted)."""
    labels = {**app_labels(settings), COMPONENT_LABEL: BUILT[component].label}
    return [p for p in kube.list("v1", "Pod", settings.namespace, label_selector(labels))
            if pod_ready(p)]


def app_container(pod: dict[str, Any], component: str) -> str:
    names = [c["name"] for c in pod["spec"]["containers"]]
    return component if component in names else names[0]


def not_in_dev_mode(pods: dict[str, list[dict[str, Any]]]) -> str:
    """Why the pods cannot take a sync ("" when every component has Ready dev pods)."""
    for component, found in sorted(pods.items()):
        if not found:
            return f"no Ready {component} pod"
        plain = [p["metadata"]["name"] for p in found if not is_dev(p)]
        if plain:
            return f"{component} pod {plain[0]} is not in dev mode (deployed without --dev)"
    return ""


class PodExec:
    """Execs through the API, each on a client no other exec uses at the same time
    (exec_in_pod swaps the client's request method while it runs); the clients are kept
    for the next sync, so only the first pays for the SDK and the kubeconfig."""

    def __init__(self, context: str, namespace: str) -> None:
        self.context = context
        self.namespace = namespace
        self.idle: list[Any] = []
        self.lock = threading.Lock()

    def client(self) -> Any:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return Kube(self.context).api

    def warm(self, count: int = 2) -> None:
        """Make `count` clients ahead (the SDK's import is most of a first sync's time)."""
        made = [self.client() for _ in range(count)]
        with self.lock:
            self.idle.extend(made)

    def __call__(self, pod: str, container: str, argv: list[str]) -> tuple[int | None, str, str]:
        api = self.client()
        try:
            return exec_in_pod(api, self.namespace, pod, container, argv, timeout=SYNC_TIMEOUT_S)
        finally:
            with self.lock:
                self.idle.append(api)


def run_syncs(pods: dict[str, list[dict[str, Any]]], argv: dict[str, list[str]],
              run: Exec) -> list[PodResult]:
    """The component's argv in each of its pods, all at once."""
    work = [(component, pod["metadata"]["name"], app_container(pod, component))
            for component, found in sorted(pods.items()) for pod in found]

    def one(item: tuple[str, str, str]) -> PodResult:
        component, pod, container = item
        try:
            code, out, err = run(pod, container, argv[component])
        except Exception as exc:  # noqa: BLE001 - the API or the websocket: that pod's result
            return PodResult(component, pod, False, 0.0, f"exec failed: {exc}")
        return parse_result(component, pod, code, out, err)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(work)))) as pool:
        return list(pool.map(one, work))


def annotate(kube: Kube, namespace: str, pod: str, gen: str) -> None:
    kube.patch("v1", "Pod", pod, namespace, {"metadata": {"annotations": {DEV_CODE: gen}}})


@dataclass
class SyncOutcome:
    generation: str
    components: list[str]
    results: list[PodResult] = field(default_factory=list)
    refused: str = ""  # why nothing was synced (too large, no dev pods): fall back

    @property
    def ok(self) -> bool:
        return not self.refused and bool(self.results) and all(r.ok for r in self.results)


def sync(kube: Kube, settings: Settings, plan: Plan, run: Exec | None = None) -> SyncOutcome:
    """Sync the plan's files into every Ready pod of their components; annotate the pods
    that took them. `refused` set: nothing was sent (fall back to a rebuild)."""
    files = {component: contents(found) for component, found in plan.files.items()}
    gen = generation({(f"{c}/{n}", d) for c, found in files.items() for n, d in found.items()})
    outcome = SyncOutcome(gen, sorted(files))
    try:
        argv = {component: sync_argv(gen, found) for component, found in files.items()}
    except TooLarge as exc:
        outcome.refused = str(exc)
        return outcome
    pods = {component: ready_pods(kube, settings, component) for component in files}
    outcome.refused = not_in_dev_mode(pods)
    if outcome.refused:
        return outcome
    outcome.results = run_syncs(pods, argv, run or PodExec(kube.context, settings.namespace))
    for result in outcome.results:
        if result.ok:
            annotate(kube, settings.namespace, result.pod, gen)
    return outcome


def short_error(error: str) -> str:
    """A pod's error in one line: its first line, and the last (the exception) when it is
    a traceback."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()] or ["(no error given)"]
    return lines[0] if len(lines) == 1 else f"{lines[0]} ({lines[-1]})"


def failure_lines(outcome: SyncOutcome) -> list[str]:
    """The pods that did not take the code, with their error (each one once, its stderr
    after it), and what keeps serving."""
    failed = [r for r in outcome.results if not r.ok]
    by_error: dict[str, list[str]] = {}
    for result in failed:
        by_error.setdefault(result.error, []).append(result.pod)
    lines = []
    for error, pods in by_error.items():
        first, *rest = error.strip().splitlines() or [""]
        lines.append(f"{', '.join(pods)}: the new code did not start: {first}")
        lines.extend(f"    {line}" for line in rest[-8:])
    took = [r.pod for r in outcome.results if r.ok]
    lines.append(f"the previous code keeps serving in {', '.join(r.pod for r in failed)}"
                 + (f" (took {outcome.generation}: {', '.join(took)})" if took else
                    "; fix the error and save again"))
    return lines


# ---- what runs in a dev pod: `inv status` and verify say it alike ---------------------------------


def image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[-1] if ":" in last else image


def dev_note(pod: dict[str, Any]) -> str:
    """What a dev pod serves ("" for a pod deployed without dev mode)."""
    if not is_dev(pod):
        return ""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    tag = image_tag(containers[0].get("image", "?"))
    code = annotations.get(DEV_CODE)
    if code:
        return f"dev: synced from working tree {code}, not image {tag}"
    return f"dev mode: image {tag}'s code, not synced yet"
