"""`inv watch`: on every save, rebuild only the image whose sources changed and roll
only that component, until Ctrl-C.

What is watched: each image's folders (app/backend, app/frontend, and app/common, which
both use), app/.dockerignore, the Dockerfiles (docker/) and the chart. A save is mapped
to its component(s); the change is picked up
by the same content-addressed build as `inv build` (a file the .dockerignore leaves
out changes no tag, so nothing happens; a requirements change rebuilds the
dependency layer, Docker's layer cache keeps the rest) and deployed by the same
`inv deploy` stage, which applies only the objects whose manifests changed: the one
Deployment with the new image, or what a chart edit touched.

The mechanism is an image rebuild and a rolling update, not a file sync into a
writable volume: the deploy keeps the restricted Pod Security profile and the
read-only root filesystem, and what runs is always an image `inv build` would make.
The rollout keeps the old pods serving until the new ones are ready (maxUnavailable
0), so a broken change never takes the app down. After each change the build and
deploy gates are recorded as `inv build` and `inv deploy` record them, so `inv
verify` sees a consistent state; when the build, the rollout or the new image's
smoke test (run once the new pods serve: it is not on the path to the new code
answering) fails, the previous images are deployed again and the reason is printed.

"Serving" is what a user sees: after the rollout, /api/meta asked through the frontend's URL
names a backend pod running the new image (and, for a new frontend image, the frontend
Service sends new connections only to new frontend pods): todo_deploy.access.serving. The way to
the frontend (its URL, or a port-forward) is opened at the first check and kept until watch
stops (opened again after a failed check or a chart change).

With `--dev` (issue 24) the deploy renders the pods for live update, and a save that only
touches the apps' packages (todo_api, todo_web, todo_serving; migrations aside) is synced
into every Ready pod of its component(s) through the Kubernetes API, without an image or a
new pod (todo_deploy/release/live_update.py): "serving" is then the frontend's /api/meta
naming the synced code (the backend's `code`, the frontend's X-Code-Version). Anything else
(dependencies, Dockerfiles, migrations, the chart, settings) is rebuilt and rolled as
above, saying why; a sync that does not start keeps the previous code serving.

File events come from `watchfiles` (inotify/FSEvents through a Rust core, grouped:
an editor's save-as-rename is one change).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy import images
from todo_deploy.access import serving
from todo_deploy.artifacts import load_images, save_images
from todo_deploy.chart import values as chart_values
from todo_deploy.gate_details import BuildDetails, DeployDetails
from todo_deploy.gates import GateResult
from todo_deploy.gates import load as load_gate
from todo_deploy.kube import Kube
from todo_deploy.pipeline import conductor, record
from todo_deploy.pipeline.registry import stage_module
from todo_deploy.release import live_update
from todo_deploy.release.live_update import IGNORED_PARTS, IGNORED_SUFFIXES, ignored
from todo_deploy.timing import Timeline
from todo_deploy.tools.commands import Runner

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings

Log = Callable[[str], None]
CHART = "chart"
BUILD = "build"  # the build stage (its gate: .state/build.json)
# Files no image or chart is made of (editor droppings and Python caches): live_update's
# IGNORED_SUFFIXES and IGNORED_PARTS, `ignored`.
__all__ = ["IGNORED_PARTS", "IGNORED_SUFFIXES", "ignored"]
# After a sync: how long the frontend may take to answer with the synced code.
DEV_SERVED_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Layout:
    """Where each watched thing lives."""

    # component -> the folders it is built from (app/<component> and app/common): a
    # change in app/common affects both images.
    sources: dict[str, tuple[Path, ...]]
    dockerfiles: dict[str, Path]  # component -> docker/<component>.Dockerfile
    chart: Path
    # The build context's own files (app/.dockerignore): a change affects every image.
    shared: tuple[Path, ...] = ()

    @classmethod
    def of(cls, loaded: LoadedSettings) -> Layout:
        root = images.source_root(loaded)
        contexts = {root / c.context for c in images.COMPONENTS.values()}
        return cls(
            sources={n: tuple(root / d for d in c.source_dirs)
                     for n, c in images.COMPONENTS.items()},
            dockerfiles={n: root / c.dockerfile for n, c in images.COMPONENTS.items()},
            chart=chart_values.CHART_DIR,
            shared=tuple(sorted(c / ".dockerignore" for c in contexts)),
        )

    def paths(self) -> list[Path]:
        """The folders to watch, none inside another: the build contexts (their
        .dockerignore is a file an editor may replace, so its folder is watched), the
        Dockerfiles' folder and the chart."""
        folders = [*{p.parent for p in self.shared},
                   *(d for dirs in self.sources.values() for d in dirs),
                   *{p.parent for p in self.dockerfiles.values()}, self.chart]
        unique = [p for p in dict.fromkeys(folders) if p.exists()]
        return [p for p in unique if not any(p != o and p.is_relative_to(o) for o in unique)]


def affected(paths: Iterable[Path], layout: Layout) -> set[str]:
    """The components (and CHART) that the changed paths belong to."""
    out: set[str] = set()
    for path in paths:
        if ignored(path):
            continue
        for name, folders in layout.sources.items():
            if (path == layout.dockerfiles[name] or path in layout.shared
                    or any(path.is_relative_to(folder) for folder in folders)):
                out.add(name)
        if path.is_relative_to(layout.chart):
            out.add(CHART)
    return out


@dataclass
class Outcome:
    """One change, handled: what was done, whether the new version serves, and why not."""

    components: set[str]
    ok: bool
    message: str
    seconds: float
    timeline: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: bool = False


class Watcher:
    """Builds and deploys changes; keeps one Docker client and one API connection."""

    def __init__(self, loaded: LoadedSettings, log: Log, *, timeout_s: int = 120,
                 frontend_url: serving.FrontendUrl | None = None, dev: bool = False,
                 run_exec: live_update.Exec | None = None, kube: Any = None) -> None:
        self.loaded = loaded
        self.log = log
        self.timeout_s = timeout_s
        self.dev = dev  # deploy for live update and sync what can be synced (issue 24)
        # How a sync's command runs in a pod: exec through the Kubernetes API by default.
        self.run_exec: live_update.Exec | None = run_exec or (
            live_update.PodExec(loaded.settings.context_name, loaded.settings.namespace) if dev else None)
        self._client: Any = None
        self._kube: Any = kube  # None: connected on first use
        self.frontend_url = frontend_url  # None: as a user reaches it (serving.user_url)
        # The frontend as a user reaches it, opened at the first check and kept for the
        # session (a port-forward is not set up again for every change).
        self._frontend: contextlib.ExitStack | None = None
        self._frontend_at = ""

    # ---- connections, made once -------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            self._client = images.engine()
        return self._client

    def kube(self) -> Any:
        if self._kube is None:
            self._kube = Kube(self.loaded.settings.context_name)
        return self._kube

    @contextlib.contextmanager
    def kept_frontend_url(self) -> Iterator[str]:
        """The frontend's URL as a user reaches it, opened once and kept until `drop_frontend`."""
        if self._frontend is None:
            with contextlib.ExitStack() as stack:
                self._frontend_at = stack.enter_context(serving.user_url(self.loaded.settings, self.kube()))
                self._frontend = stack.pop_all()
        yield self._frontend_at

    def drop_frontend(self) -> None:
        """Close the kept way to the frontend (the next check opens a new one)."""
        if self._frontend is not None:
            self._frontend.close()
            self._frontend = None

    def close(self) -> None:
        self.drop_frontend()

    # ---- one save, in dev mode: synced when it can be ---------------------------------
    def handle_save(self, paths: list[Path], components: set[str]) -> Outcome:
        """`--dev`: sync the save into the dev pods when only the apps' packages changed;
        otherwise (and without --dev) rebuild and roll, saying why."""
        if not self.dev:
            return self.handle(components)
        started = time.monotonic()
        plan = live_update.classify(paths, images.source_root(self.loaded), chart_values.CHART_DIR)
        if not plan.syncable:
            if plan.fallbacks:
                self.log(f"watch: cannot sync {plan.reasons()}: rebuilding and rolling instead")
            return self.handle(components)
        return self._sync(plan, components, started)

    def _sync(self, plan: live_update.Plan, components: set[str], started: float) -> Outcome:
        timeline = Timeline(self.log, prefix="watch ")
        files = sorted({name for found in plan.files.values() for name in found})
        with timeline.phase("sync into the dev pods"):
            synced = live_update.sync(self.kube(), self.loaded.settings, plan, self.run_exec)
        if synced.refused:
            self.log(f"watch: cannot sync ({synced.refused}): rebuilding and rolling instead")
            return self.handle(components)
        if not synced.ok:
            for line in live_update.failure_lines(synced):
                self.log("watch: " + line)
            failed = [r for r in synced.results if not r.ok]
            return self._done(components, started, timeline, False,
                              f"the sync of {', '.join(files)} ({synced.generation}) did not start in "
                              f"{', '.join(r.pod for r in failed)}: "
                              f"{live_update.short_error(failed[0].error)}; the previous code keeps serving")
        expected = {component: synced.generation for component in synced.components}
        with timeline.phase("synced code through the frontend"):
            why = serving.dev_code_served(self.loaded.settings, self.kube(), expected,
                                          self.frontend_url or self.kept_frontend_url,
                                          timeout=DEV_SERVED_TIMEOUT_S)
        if why:
            self.drop_frontend()
            return self._done(components, started, timeline, False,
                              f"synced {synced.generation} into {len(synced.results)} pod(s) but the "
                              f"frontend did not answer with it within {DEV_SERVED_TIMEOUT_S:g} s: {why}")
        pods = ", ".join(r.pod for r in synced.results)
        return self._done(components, started, timeline, True,
                          f"{', '.join(files)} synced as {synced.generation} into {pods} (no image "
                          f"built, no pod replaced): serving {time.monotonic() - started:.1f} s "
                          "after the save")

    def deploy_dev(self) -> GateResult:
        """The first deploy of `inv watch --dev`: the pods rendered for live update."""
        gate = self._deploy(Timeline(self.log, prefix="watch "))
        if not gate.passed:
            self.log("watch: FAILED: the dev-mode deploy failed: "
                     + "; ".join(f"{c.name}: {c.evidence}" for c in gate.failures))
        return gate

    # ---- one change -----------------------------------------------------------------
    def handle(self, components: set[str]) -> Outcome:
        started = time.monotonic()
        timeline = Timeline(self.log, prefix="watch ")
        names = sorted(c for c in components if c in images.COMPONENTS)
        previous = load_images(self.loaded.state_dir)
        build_gate, rebuilt = self._build(names, previous, timeline)
        if not build_gate.passed:
            failed = "; ".join(f"{c.name}: {c.evidence}" for c in build_gate.failures)
            return self._done(components, started, timeline, False,
                              f"the build failed, nothing was deployed (the running version "
                              f"keeps serving): {failed}")
        if not rebuilt and CHART not in components:
            return self._done(components, started, timeline, True,
                              "no image changed (the change is outside the build contexts' "
                              "content): nothing to deploy")
        deploy_gate = self._deploy(timeline)
        if not deploy_gate.passed:
            reason = DeployDetails.of(deploy_gate).diagnosis or "; ".join(
                f"{c.name}: {c.evidence}" for c in deploy_gate.failures)
            rolled = self._roll_back(previous, timeline) if rebuilt else False
            return self._done(components, started, timeline, False,
                              f"the rollout failed: {reason}", rolled_back=rolled)
        rolled_out = time.monotonic() - started
        if CHART in components:
            self.drop_frontend()  # the chart may have changed how the frontend is reached
        not_served = self._wait_served(rebuilt, timeline)
        served_at = time.monotonic() - started
        if not_served:
            self.drop_frontend()  # a way that failed is not kept
            return self._done(components, started, timeline, False,
                              f"the rollout finished in {rolled_out:.1f} s but the frontend did not answer "
                              f"with the new code within {serving.TIMEOUT_S:g} s: {not_served}")
        smoke_failures = self._smoke(rebuilt, build_gate, timeline)
        if smoke_failures:
            rolled = self._roll_back(previous, timeline)
            return self._done(components, started, timeline, False,
                              "the new image failed its smoke test: " + "; ".join(smoke_failures),
                              rolled_back=rolled)
        what = ", ".join(f"{n} {img.ref}" for n, img in rebuilt.items()) or "the chart"
        where = "through the frontend" if rebuilt else "(rollout done)"
        return self._done(components, started, timeline, True,
                          f"{what} serving {where} {served_at:.1f} s after the change was seen"
                          + (f" (rollout done at {rolled_out:.1f} s)" if rebuilt else ""))

    def _done(self, components: set[str], started: float, timeline: Timeline, ok: bool,
              message: str, *, rolled_back: bool = False) -> Outcome:
        outcome = Outcome(components, ok, message, time.monotonic() - started,
                          timeline.as_details()["phases"], rolled_back)
        self.log(("watch: " if ok else "watch: FAILED: ") + message)
        return outcome

    def _build(
        self, names: list[str], previous: dict[str, ImageRef], timeline: Timeline
    ) -> tuple[GateResult, dict[str, ImageRef]]:
        """Build the changed images; the build gate (without the smoke checks yet) and
        the images that are new. The gate is the build stage's (its `build_gate`)."""
        gate = GateResult(BUILD)
        details = BuildDetails()
        rebuilt: dict[str, ImageRef] = {}
        if not names:
            gate.details = details.as_dict()
            return gate, rebuilt
        runner = Runner(log=self.log, secrets=self.loaded.settings.secret_values())
        built, _ = stage_module(BUILD).build_gate(
            self.loaded, names, gate, details, timeline, runner=runner, log=self.log,
            client=self.client(), known=previous, build_phase=True)
        gate.details = details.as_dict()
        current = dict(previous)
        for name, outcome in (built or {}).items():
            if previous.get(name) is None or previous[name].image_id != outcome.image.image_id:
                rebuilt[name] = outcome.image
            current[name] = outcome.image
        if gate.passed:
            save_images(self.loaded.state_dir, current)
        return gate, rebuilt

    def _deploy(self, timeline: Timeline) -> GateResult:
        with timeline.phase("deploy (only what changed)"):
            return conductor.run_and_record(self.loaded, "deploy", kube=self.kube(),
                                            timeout_s=self.timeout_s, log=self.log,
                                            dev=self.dev)

    def _wait_served(self, rebuilt: dict[str, ImageRef], timeline: Timeline) -> str | None:
        """After the rollout: None once the frontend answers with the new images' code; else why not."""
        if not rebuilt:
            return None
        with timeline.phase("new code through the frontend"):
            return serving.new_code_served(self.loaded.settings, self.kube(), rebuilt,
                                           self.frontend_url or self.kept_frontend_url)

    def _smoke(self, rebuilt: dict[str, ImageRef], build_gate: GateResult,
               timeline: Timeline) -> list[str]:
        """The build gate's smoke checks of the new images, then the build gate recorded
        (merged with the previous one's checks of the images that did not change)."""
        for name, image in rebuilt.items():
            build_gate.checks.extend(stage_module(BUILD).smoke_test(self.client(), name, image, log=self.log,
                                                      timeline=timeline))
        previous = load_gate(self.loaded.state_dir, BUILD)
        if previous is not None:
            now = BuildDetails.of(build_gate)
            kept = [c for c in previous.checks if c.name.rsplit(" ", 1)[-1] not in now.images]
            build_gate.checks = kept + build_gate.checks
            now.images = {**BuildDetails.of(previous).images, **now.images}
            build_gate.details = now.as_dict()
        failures = [f"{c.name}: {c.evidence}" for c in build_gate.failures]
        if not failures:
            record(self.loaded, build_gate)
        return failures

    def _roll_back(self, previous: dict[str, ImageRef], timeline: Timeline) -> bool:
        """Deploy the images that served before this change again."""
        if not previous:
            return False
        save_images(self.loaded.state_dir, previous)
        self.log("watch: deploying the previous images again")
        with timeline.phase("roll back"):
            gate = self._deploy(timeline)
        if not gate.passed:
            self.log("watch: the previous images did not deploy either: "
                     + "; ".join(f"{c.name}: {c.evidence}" for c in gate.failures))
        return gate.passed


def watch(
    loaded: LoadedSettings,
    *,
    log: Log,
    timeout_s: int = 120,
    stop: threading.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    step_ms: int = 100,
    frontend_url: serving.FrontendUrl | None = None,
    dev: bool = False,
    deploy_first: bool = True,
    run_exec: live_update.Exec | None = None,
) -> int:
    """Watch until Ctrl-C (or `stop` is set); returns the number of changes handled.
    `frontend_url`: where "serving" is asked (default: as a user reaches the frontend).
    `dev`: live update (deployed in dev mode first unless `deploy_first` is False: `inv up
    --dev` just did); `run_exec`: how a sync's command runs in a pod (default: exec)."""
    from watchfiles import watch as file_events

    layout = Layout.of(loaded)
    watcher = Watcher(loaded, log, timeout_s=timeout_s, frontend_url=frontend_url, dev=dev,
                      run_exec=run_exec)
    if dev and deploy_first and not _deployed_in_dev_mode(watcher, log):
        return 0
    if isinstance(watcher.run_exec, live_update.PodExec):
        _warm(watcher.run_exec, loaded.settings.backend_replicas + loaded.settings.frontend_replicas)
    watched = layout.paths()
    log("watching " + ", ".join(str(p) for p in watched) + " (Ctrl-C to stop)")
    handled = 0
    try:
        for changes in file_events(*watched, stop_event=stop, step=step_ms,
                                   rust_timeout=500, yield_on_timeout=False,
                                   watch_filter=lambda _change, path: not ignored(Path(path))):
            saved = sorted({Path(p) for _, p in changes})
            components = affected(saved, layout)
            if not components:
                continue
            # (Editors and `sed -i` write a temporary file and rename it: show what is left.)
            paths = sorted({str(Path(p).relative_to(_common(watched, Path(p))))
                            for _, p in changes if Path(p).exists()}) or ["(deleted files)"]
            shown = ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
            log(f"watch: changed {shown} -> {', '.join(sorted(components))}")
            outcome = watcher.handle_save(saved, components)
            handled += 1
            if on_outcome is not None:
                on_outcome(outcome)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
    log(f"watch: stopped ({handled} change(s) handled)")
    return handled


def _warm(pod_exec: live_update.PodExec, count: int) -> None:
    """The exec clients made while nothing is saved yet (the first sync would wait for them)."""

    def warm() -> None:
        with contextlib.suppress(Exception):  # the first sync tries again and says why
            pod_exec.warm(count)

    threading.Thread(target=warm, name="warm-exec-clients", daemon=True).start()


def _deployed_in_dev_mode(watcher: Watcher, log: Log) -> bool:
    log("watch --dev: deploying in dev mode (saved Python, template and static files are "
        "synced into the running pods)")
    if watcher.deploy_dev().passed:
        return True
    watcher.close()
    return False


def _common(roots: list[Path], path: Path) -> Path:
    """The watched folder's parent that `path` is under (for short names in the output)."""
    for root in roots:
        if path.is_relative_to(root):
            return root.parent
    return path.parent
