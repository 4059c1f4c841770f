"""Stage 1, `inv build`: both images build, lint clean, fit their budget, start healthy as non-root.

The gate, check by check:
  lint <c>            hadolint finds nothing in docker/<c>.Dockerfile
  docker engine       the engine answers (only reported when it does not)
  build <c>           the image exists under its content-addressed tag (built or up to date)
  size <c>            the bytes its layers add above the base fit <C>_IMAGE_BUDGET_MB
  healthy <c>         a container of it reaches Docker health "healthy" within 30 s
  endpoint <c>        its health endpoint answers 200 from the host within 30 s
  non-root <c>        Config.User is numeric and non-zero, and `id -u` inside is not 0
  cleanup <c>         the test container is gone afterwards (removed in `finally`)
  gordon              (--gordon) Docker's AI agent reviewed each Dockerfile, or skip
  push <c>            (--push) the image reached IMAGE_REGISTRY
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy import images
from todo_deploy.artifacts import ImageRef, load_images, save_images
from todo_deploy.console import say
from todo_deploy.gate_details import BuildDetails
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.gates import load as load_gate
from todo_deploy.images.dockerfile_lint import lint as _lint
from todo_deploy.timing import Timeline
from todo_deploy.tools import gordon as gordon_agent
from todo_deploy.tools.commands import Runner, scrub

if TYPE_CHECKING:
    from collections.abc import Callable

    from docker import DockerClient

    from todo_deploy.config import LoadedSettings
    from todo_deploy.images import Log

STAGE = "build"




SMOKE_CHECKS = ("healthy", "endpoint", "non-root", "cleanup")
SMOKE_TIMEOUT_S = 30.0
SMOKE_HEALTH_INTERVAL_NS = 500_000_000


def run(
    loaded: LoadedSettings,
    *,
    no_cache: bool = False,
    push: bool = False,
    gordon: bool = False,
    only: str | None = None,
    log: Log = say,
    runner: Runner | None = None,
    client: DockerClient | None = None,
    smoke: bool = True,
    on_planned: Callable[[ImageRef], None] | None = None,
) -> GateResult:
    """Build (or skip) the images and prove them; returns the `build` gate.

    smoke=False leaves the smoke test of each image that has not passed it yet to the
    caller (`inv up` runs it beside the rollout): they are named in
    details["smoke_pending"], and `smoke_tests` runs them. `on_planned` hears of each
    image about to be built (images.build_image).
    """
    settings = loaded.settings
    names = [only] if only else list(images.COMPONENTS)
    unknown = [n for n in names if n not in images.COMPONENTS]
    if unknown:
        raise ValueError(f"--only must be one of {', '.join(images.COMPONENTS)}, not {unknown[0]!r}")
    if push and not settings.image_registry:
        raise ValueError("--push needs IMAGE_REGISTRY (e.g. IMAGE_REGISTRY=localhost:5000)")
    runner = runner or Runner(log=log, secrets=settings.secret_values())
    root = images.source_root(loaded)
    result = GateResult(STAGE)
    details = BuildDetails()
    timeline = Timeline(log, prefix="build ")
    try:
        _run(loaded, result, details, timeline, names, no_cache=no_cache, push=push,
             gordon=gordon, log=log, runner=runner, client=client, root=root, smoke=smoke,
             on_planned=on_planned)
    finally:
        details.timings = timeline.as_details()
        result.details = details.as_dict()
    return result


def _run(
    loaded: LoadedSettings,
    result: GateResult,
    details: BuildDetails,
    timeline: Timeline,
    names: list[str],
    *,
    no_cache: bool,
    push: bool,
    gordon: bool,
    log: Log,
    runner: Runner,
    client: DockerClient | None,
    root: Path,
    smoke: bool = True,
    on_planned: Callable[[ImageRef], None] | None = None,
) -> None:
    recorded = load_images(loaded.state_dir)

    def keep(name: str, outcome: images.BuildOutcome) -> None:
        recorded[name] = outcome.image
        save_images(loaded.state_dir, recorded)

    built, client = build_gate(loaded, names, result, details, timeline, runner=runner,
                               log=log, client=client, known=dict(recorded), no_cache=no_cache,
                               on_planned=on_planned, on_built=keep)
    if built is None:
        return
    proven, client = _prove(loaded, result, details, timeline, built, client=client,
                            smoke=smoke, log=log)
    if not proven:
        return
    if gordon:
        with timeline.phase("gordon"):
            result.checks.append(
                gordon_check(runner, root, names, details, loaded.settings.aiops_timeout_seconds, log)
            )
    if push:
        push_images(loaded, result, built, timeline, client, log)


def build_gate(
    loaded: LoadedSettings,
    names: list[str],
    result: GateResult,
    details: BuildDetails,
    timeline: Timeline,
    *,
    runner: Runner,
    log: Log,
    client: DockerClient | None = None,
    known: dict[str, ImageRef] | None = None,
    no_cache: bool = False,
    on_planned: Callable[[ImageRef], None] | None = None,
    on_built: Callable[[str, images.BuildOutcome], None] | None = None,
    build_phase: bool = False,
) -> tuple[dict[str, images.BuildOutcome] | None, DockerClient | None]:
    """The build gate of these images before their smoke test: lint, build (or find up to
    date) and size, added to `result` (what was built to `details`). The build stage's
    and `inv watch`'s. `known`: the images recorded before; `on_built` hears of each
    image built; `build_phase` times each build as a phase of its own.

    Returns the images built, or None when the engine did not answer, and the engine
    client (None when every image was found up to date without it)."""
    known = known or {}
    root = images.source_root(loaded)
    for name in names:
        with timeline.phase(f"lint {name}"):
            result.checks.append(
                _lint(runner, root / images.COMPONENTS[name].dockerfile, name, loaded.state_dir)
            )
    quick = {} if no_cache or client is not None else _up_to_date(loaded, names, known, timeline, log)
    if client is None and len(quick) < len(names):
        try:
            with timeline.phase("connect to the Docker engine"):
                client = images.engine()
        except images.EngineUnavailable as exc:
            result.checks.append(_engine_check(exc))
            return None, None
    built: dict[str, images.BuildOutcome] = {}
    for name in names:
        with timeline.phase(f"build {name}") if build_phase else contextlib.nullcontext():
            outcome = quick.get(name) or _build_one(
                loaded, name, result, no_cache=no_cache, log=log, client=client,
                known=known.get(name), timeline=timeline, on_planned=on_planned)
        if outcome is None:
            continue
        built[name] = outcome
        if on_built is not None:
            on_built(name, outcome)
        _record_built(result, details, name, outcome)
    for name, outcome in built.items():
        result.checks.append(size_check(loaded, name, outcome))
    return built, client


def _up_to_date(loaded: LoadedSettings, names: list[str], known: dict[str, ImageRef],
                timeline: Timeline, log: Log) -> dict[str, images.BuildOutcome]:
    """The images whose content tag is already in the engine (no build needed)."""
    quick: dict[str, images.BuildOutcome] = {}
    for name in names:
        with timeline.phase(f"up to date? {name}"):
            hit = images.up_to_date(loaded, name, known.get(name), log=log)
        if hit is not None:
            quick[name] = hit
    return quick


def _build_one(
    loaded: LoadedSettings, name: str, result: GateResult, *, no_cache: bool, log: Log,
    client: DockerClient | None, known: ImageRef | None, timeline: Timeline,
    on_planned: Callable[[ImageRef], None] | None,
) -> images.BuildOutcome | None:
    """Build one image; None (and the failed check in `result`) when it did not build."""
    spec = images.COMPONENTS[name]
    try:
        return images.build_image(loaded, name, no_cache=no_cache, log=log, client=client,
                                  known=known, timeline=timeline, on_planned=on_planned)
    except images.PullError as exc:
        base = loaded.settings.python_base_image
        result.checks.append(Check.of(
            f"base image {name}", False, str(exc),
            f"check PYTHON_BASE_IMAGE={base} (`inv config`), that `docker pull {base}` "
            "works here (network, registry login, mirror), then `inv build`",
        ))
    except images.BuildError as exc:
        result.checks.append(Check.of(
            f"build {name}", False, _last_lines(str(exc), 12),
            f"fix {spec.dockerfile} or {spec.app_dir}/requirements.txt (the evidence "
            "holds the build's last lines), then `inv build --no-cache`",
        ))
    return None


def _record_built(result: GateResult, details: BuildDetails, name: str,
                  outcome: images.BuildOutcome) -> None:
    how = (
        f"up to date, build skipped in {outcome.seconds:.3f} s"
        if outcome.skipped
        else f"built in {outcome.seconds:.1f} s"
    )
    result.checks.append(Check.of(f"build {name}", True, f"{outcome.image.ref} ({how})"))
    details.images[name] = {
        "ref": outcome.image.ref,
        "image_id": outcome.image.image_id,
        "size_bytes": outcome.image.size_bytes,
        "added_bytes": outcome.image.added_bytes,
        "base_image": outcome.base_image,
        "base_size_bytes": outcome.base_size_bytes,
        "skipped": outcome.skipped,
        "seconds": round(outcome.seconds, 3),
    }


def _prove(
    loaded: LoadedSettings, result: GateResult, details: BuildDetails, timeline: Timeline,
    built: dict[str, images.BuildOutcome], *, client: DockerClient | None, smoke: bool, log: Log,
) -> tuple[bool, DockerClient | None]:
    """Each built image's smoke test: reused when this image ID passed it, left pending
    (smoke=False), or run. False when the engine did not answer."""
    previous = load_gate(loaded.state_dir, STAGE)
    for name, outcome in built.items():
        proven = proven_smoke_checks(previous, name, outcome.image)
        if proven and outcome.skipped:
            log(f"{name}: image {outcome.image.image_id[7:19]} already passed its smoke test")
            result.checks.extend(proven)
        elif not smoke:
            details.smoke_pending.append(name)
        else:
            if client is None:
                try:
                    client = images.engine()
                except images.EngineUnavailable as exc:
                    result.checks.append(_engine_check(exc))
                    return False, client
            result.checks.extend(smoke_test(client, name, outcome.image, log=log,
                                            timeline=timeline))
    return True, client


def _registry_login(loaded: LoadedSettings, client: DockerClient, timeline: Timeline,
                    log: Log) -> Check | None:
    """Log in with REGISTRY_USERNAME/REGISTRY_PASSWORD when they are set; the failed check."""
    try:
        with timeline.phase("registry login"):
            images.registry_login(loaded.settings, client, log)
    except images.LoginError as exc:
        return Check.of("registry login", False, str(exc),
                        "fix REGISTRY_PASSWORD (and REGISTRY_USERNAME) in .env or the "
                        "environment, then `inv build --push`")
    return None


def push_images(loaded: LoadedSettings, result: GateResult, built: dict[str, images.BuildOutcome],
          timeline: Timeline, client: DockerClient | None, log: Log) -> None:
    """Log in (with credentials), push each image and record its registry digest in
    .state/images.json (the deploy's image check compares the pods' imageIDs with it)."""
    settings = loaded.settings
    if result.passed and built:
        try:
            client = client or images.engine()
        except images.EngineUnavailable as exc:
            result.checks.append(_engine_check(exc))
            return
        refused = _registry_login(loaded, client, timeline, log)
        if refused is not None:
            result.checks.append(refused)
    digests: dict[str, str] = {}
    for name, outcome in built.items():
        if not result.passed:
            result.checks.append(Check(
                f"push {name}", Verdict.SKIP, "not pushed: the gate failed above", ""
            ))
            continue
        try:
            with timeline.phase(f"push {name}"):
                digest = images.push_image(outcome.image, log=log, client=client)
            digests[name] = digest
            result.checks.append(Check.of(f"push {name}", True, f"pushed {outcome.image.ref}"
                                          + (f" ({digest})" if digest else "")))
        except images.PushError as exc:
            registry = settings.image_registry
            result.checks.append(Check.of(
                f"push {name}", False, str(exc),
                f"start or fix the registry {registry} (IMAGE_REGISTRY), set REGISTRY_USERNAME "
                f"and REGISTRY_PASSWORD (or `docker login {registry}`), then `inv build --push`",
            ))
    _record_digests(loaded, {name: (built[name].image, d) for name, d in digests.items() if d})


def _record_digests(loaded: LoadedSettings, pushed: dict[str, tuple[ImageRef, str]]) -> None:
    """The pushed images' registry digests into .state/images.json, in one write."""
    recorded = load_images(loaded.state_dir)
    kept = {name: digest for name, (image, digest) in pushed.items()
            if name in recorded and recorded[name].ref == image.ref}
    if kept:
        save_images(loaded.state_dir, {name: replace(ref, digest=kept[name]) if name in kept else ref
                                       for name, ref in recorded.items()})


def _engine_check(exc: Exception) -> Check:
    return Check.of(
        "docker engine", False, str(exc),
        "start Docker (Docker Desktop, `minikube docker-env`, or "
        "`sudo systemctl start docker`) and check DOCKER_HOST; then `inv build`",
    )


def smoke_tests(
    loaded: LoadedSettings, result: GateResult, *, log: Log = say, timeline: Timeline | None = None,
    client: DockerClient | None = None,
) -> list[Check]:
    """The smoke tests a `run(..., smoke=False)` left pending, added to its gate (their
    phases too, under details.timings.later)."""
    details = BuildDetails.of(result)
    pending, details.smoke_pending = details.smoke_pending, []
    result.details = details.as_dict()
    if not pending:
        return []
    timeline = timeline or Timeline(log, prefix="build (after the rollout) ")
    client = client or images.engine()
    recorded = load_images(loaded.state_dir)
    checks: list[Check] = []
    for name in pending:
        checks.extend(smoke_test(client, name, recorded[name], log=log, timeline=timeline))
    result.checks.extend(checks)
    details.timings["later"] = timeline.as_details()["phases"]
    result.details = details.as_dict()
    return checks


# --- size -------------------------------------------------------------------------


def size_check(loaded: LoadedSettings, name: str, outcome: images.BuildOutcome) -> Check:
    """What the image adds above its base, against <C>_IMAGE_BUDGET_MB (warn: not measured)."""
    budget_mb: int = getattr(loaded.settings, f"{name}_image_budget_mb")
    if not outcome.base_size_bytes:
        return Check(
            f"size {name}", Verdict.WARN,
            f"not measured: the base image {outcome.base_image} is neither here nor pullable, "
            f"so what the image adds above it is unknown (image {images.mb(outcome.image.size_bytes)})",
            f"`docker pull {outcome.base_image}`, then `inv build`",
        )
    added = outcome.image.added_bytes
    ok = added <= budget_mb * 1_000_000
    return Check.of(
        f"size {name}", ok,
        f"{images.mb(added)} above {outcome.base_image} (image {images.mb(outcome.image.size_bytes)}); "
        f"budget {budget_mb} MB ({name.upper()}_IMAGE_BUDGET_MB)",
        f"reduce dependencies in {images.COMPONENTS[name].app_dir}/requirements.txt "
        f"(or raise {name.upper()}_IMAGE_BUDGET_MB), then `inv build`",
    )


# --- run the image ------------------------------------------------------------------


def smoke_env(name: str) -> dict[str, str]:
    """What each image needs to start on its own (fresh random secrets, never the real ones)."""
    if name == "backend":
        return {
            "DATABASE_URL": "sqlite:////tmp/gate.db",
            "AUTH_SECRET": secrets.token_urlsafe(32),
            "PROXY_SECRET": secrets.token_urlsafe(32),
            "LLM_PROVIDER": "offline",
            "DRAIN_SECONDS": "0",
        }
    return {
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "PROXY_SECRET": secrets.token_urlsafe(32),
        "BACKEND_URL": "http://127.0.0.1:9",
        "DRAIN_SECONDS": "0",
    }


def smoke_command(name: str) -> list[str] | None:
    # The backend's `dev` command migrates the (sqlite) database, then serves.
    return ["/opt/venv/bin/python", "-m", "todo_api", "dev"] if name == "backend" else None


def proven_smoke_checks(previous: GateResult | None, name: str, image: ImageRef) -> list[Check]:
    """The smoke checks a passed gate recorded for this exact image ID, or [].

    An image ID names immutable content, so a container started from it behaves
    as it did when the check ran; re-running it would only cost time.
    """
    if previous is None or not previous.passed:
        return []
    recorded = BuildDetails.of(previous).images.get(name, {})
    if not image.image_id or recorded.get("image_id") != image.image_id:
        return []
    suffix = f" {name}"
    return [
        Check(c.name, c.verdict, reused_evidence(c.evidence, previous.finished_at), c.fix)
        for c in previous.checks
        if c.name.endswith(suffix) and c.name.split()[0] in SMOKE_CHECKS
    ]


_REUSED = re.compile(r" \(at [^()]*, same image ID\)")


def reused_evidence(evidence: str, proven_at: str) -> str:
    """A reused check's evidence names the run that proved it, once however often it is
    reused (gates written before this rule repeat the note: all but the first go)."""
    first = _REUSED.search(evidence)
    if first:
        return evidence[: first.end()]
    return f"{evidence} (at {proven_at}, same image ID)"


def smoke_test(
    client: DockerClient, name: str, image: ImageRef, *, log: Log = say,
    timeout: float = SMOKE_TIMEOUT_S, timeline: Timeline | None = None,
) -> list[Check]:
    """Run the image (read-only root, no capabilities), wait healthy, probe, check the uid, remove."""
    from docker.errors import DockerException

    phases = _Phases(timeline or Timeline(), name)
    env = smoke_env(name)
    checks: list[Check] = []
    container = None
    port = images.COMPONENTS[name].port
    debug = f"`docker run --rm -p {port}:{port} {image.ref}`"
    log(f"{name}: starting {image.ref} to check health, endpoint and user")
    try:
        try:
            # Made first, then started: a container that cannot start is still removed.
            container = _create_container(client, name, image, env)
            container.start()
            phases.done("create + start container")
        except DockerException as exc:
            checks.append(Check.of(
                f"healthy {name}", False, f"could not start {image.ref}: {exc}",
                f"run {debug} to see why, fix, then `inv build`",
            ))
            return checks
        checks.extend(_health_checks(container, name, env, debug, timeout, phases))
        checks.append(_user_check(container, name))
        phases.done("`id -u` inside")
    finally:
        if container is not None:
            gone = _remove(container)
            phases.done("remove container")
            checks.append(Check.of(
                f"cleanup {name}", gone,
                f"test container {container.name} removed" if gone
                else f"test container {container.name} still exists",
                f"`docker rm -f {container.name}`",
            ))
    return checks


class _Phases:
    """The smoke test's phases on the timeline, each from the end of the one before."""

    def __init__(self, timeline: Timeline, name: str) -> None:
        self.timeline, self.name, self.start = timeline, name, timeline.now()

    def done(self, what: str) -> None:
        now = self.timeline.now()
        self.timeline.add(f"smoke {self.name}: {what}", self.start, now - self.start)
        self.start = now


def _create_container(client: DockerClient, name: str, image: ImageRef,
                      env: dict[str, str]) -> Any:
    return client.containers.create(
        image.ref,
        command=smoke_command(name),
        environment=env,
        name=f"todo-build-gate-{name}-{secrets.token_hex(4)}",
        labels={"todo-deploy.gate": STAGE},
        ports={f"{images.COMPONENTS[name].port}/tcp": ("127.0.0.1", None)},  # type: ignore[dict-item]  # None: a free host port, which docker's stub omits
        read_only=True,
        tmpfs={"/tmp": "rw,size=64m"},
        # The image's own HEALTHCHECK test, polled every 0.5 s instead of its
        # interval: Docker merges the fields we leave out from the image.
        healthcheck={"interval": SMOKE_HEALTH_INTERVAL_NS},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )


def _health_checks(container: Any, name: str, env: dict[str, str], debug: str,
                   timeout: float, phases: _Phases) -> list[Check]:
    """Docker health "healthy" and the health endpoint's 200, waited for together."""
    spec = images.COMPONENTS[name]
    started = time.monotonic()
    health, answered, status_code, last_error = "", None, 0, ""
    while time.monotonic() - started < timeout:
        container.reload()
        state = container.attrs["State"]
        health = (state.get("Health") or {}).get("Status", "none")
        if state.get("Status") in ("exited", "dead"):
            last_error = f"container exited with code {state.get('ExitCode')}"
            break
        if answered is None:
            status_code, last_error = _probe(container, f"{spec.port}/tcp", spec.health_path)
            if status_code == 200:
                answered = time.monotonic() - started
        if health == "healthy" and answered is not None:
            break
        time.sleep(0.2)
    waited = time.monotonic() - started
    phases.done("Docker health 'healthy' + endpoint 200")
    logs = _logs(container, [v for k, v in env.items() if "SECRET" in k])
    fix_run = f"read the log in the evidence, run {debug}, fix, then `inv build`"
    return [
        Check.of(
            f"healthy {name}", health == "healthy",
            f"Docker health '{health}' after {waited:.1f} s"
            + ("" if health == "healthy" else f"; {last_error}; log: {logs}"),
            fix_run,
        ),
        Check.of(
            f"endpoint {name}", answered is not None,
            f"GET {spec.health_path} → 200 after {answered:.1f} s" if answered is not None
            else f"GET {spec.health_path} got no 200 within {timeout:.0f} s "
            f"(last: {status_code or last_error}); log: {logs}",
            fix_run,
        ),
    ]


def _probe(container: Any, port_key: str, path: str) -> tuple[int, str]:
    bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(port_key) or []
    if not bindings:
        return 0, "port not published yet"

    url = f"http://127.0.0.1:{bindings[0]['HostPort']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def _user_check(container: Any, name: str) -> Check:
    user = str(container.attrs["Config"].get("User") or "")
    uid_text = user.split(":")[0]
    numeric = uid_text.isdigit() and int(uid_text) != 0
    from docker.errors import DockerException

    inside = ""
    try:
        code, output = container.exec_run(["id", "-u"])
        inside = output.decode(errors="replace").strip() if code == 0 else f"exec failed ({code})"
    except DockerException as exc:  # the container may have exited: report it
        inside = f"exec failed: {exc}"
    ok = numeric and inside.isdigit() and int(inside) != 0
    return Check.of(
        f"non-root {name}", ok,
        f"Config.User={user or '(empty)'}, `id -u` inside = {inside}",
        f"keep `USER 10001:10001` in docker/{name}.Dockerfile, then `inv build --no-cache`",
    )


def _logs(container: Any, hide: list[str]) -> str:
    from docker.errors import DockerException

    try:
        text = container.logs(tail=15).decode(errors="replace")
    except DockerException:
        return "(no log)"
    return scrub(_last_lines(text, 15), hide) or "(empty)"


def _remove(container: Any) -> bool:
    from docker.errors import DockerException, NotFound

    try:
        container.remove(force=True, v=True)
    except NotFound:
        return True
    except DockerException:
        pass
    try:
        container.client.containers.get(container.id)
    except NotFound:
        return True
    except DockerException:
        return False
    return False


# --- Gordon -------------------------------------------------------------------------


def gordon_check(
    runner: Runner, root: Path, names: list[str], details: BuildDetails, timeout: float, log: Log
) -> Check:
    """Gordon's review of each Dockerfile (advice in details.gordon); skip without it."""
    if not gordon_agent.available(runner):
        log(gordon_agent.NOT_FOUND)
        details.gordon = {"available": False, "message": gordon_agent.NOT_FOUND}
        return Check("gordon", Verdict.SKIP, gordon_agent.NOT_FOUND, "")
    advice: dict[str, str] = {}
    problems: list[str] = []
    for name in names:
        dockerfile = root / images.COMPONENTS[name].dockerfile
        answer = gordon_agent.review_dockerfile(runner, dockerfile, timeout, root)
        if answer.ok:
            advice[name] = answer.stdout.strip()
        else:
            problems.append(f"{name}: {_last_lines(answer.stderr or answer.stdout, 3)}")
    details.gordon = {"available": True, "advice": advice, "problems": problems}
    if problems and not advice:
        return Check("gordon", Verdict.WARN, "Gordon did not answer: " + "; ".join(problems),
                     "check `docker ai version` and that you are signed in to Docker Desktop")
    reviewed = ", ".join(advice)
    return Check("gordon", Verdict.PASS,
                 f"Gordon reviewed {reviewed} (advice in .state/build.json details.gordon)", "")


def _last_lines(text: str, count: int) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])
