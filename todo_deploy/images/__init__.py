"""Thin helpers over the docker SDK: content-addressed tags, builds with progress, push.

A tag is the first 12 hex digits of a sha256 over the exact build context
(every path the `.dockerignore` lets through, with its mode and contents, in
sorted order), the Dockerfile and the build arguments. Both images share the
context app/, but each is sent, and hashed, only its own folders (components.py:
`sources`, e.g. backend/ and common/), so an edit of one app changes only its tag. The same inputs always
give the same tag, so a build whose tag already exists locally is skipped: that
path only hashes the files and asks the engine for one image.

`docker` is imported inside functions only: `inv --list` never pays for it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from todo_deploy.artifacts import ImageRef, load_images, save_images
from todo_deploy.components import BUILT, Component
from todo_deploy.config import PROJECT_ROOT
from todo_deploy.config.registry_auth import USER_AND_PASSWORD, AuthFileError
from todo_deploy.console import console, say
from todo_deploy.images import context_cache
from todo_deploy.timing import Timeline

if TYPE_CHECKING:
    from docker import DockerClient

    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.config.registry_auth import Login

Log = Callable[[str], None]

# The name the Dockerfile gets inside the tar context we send (never a file of the app).
CONTEXT_DOCKERFILE = ".todo-deploy.Dockerfile"
ENGINE_TIMEOUT_S = 900


COMPONENTS = BUILT  # the images built: backend and frontend (components.py)


class EngineUnavailable(Exception):
    """The Docker engine cannot be reached."""


class BuildError(Exception):
    """`docker build` failed; the message holds the error and the last output lines."""


class PushError(Exception):
    """`docker push` failed (registry unreachable, denied, ...)."""


class PullError(Exception):
    """`docker pull` failed: the message names the image and the registry's answer."""


def source_root(loaded: LoadedSettings) -> Path:
    """Where docker/ and app/ are: the settings root when it has them, else the project."""
    return loaded.root if (loaded.root / "docker").is_dir() else PROJECT_ROOT


def repository(settings: Settings, component: str) -> str:
    name = COMPONENTS[component].image_name
    registry = settings.image_registry.strip().rstrip("/")
    return f"{registry}/{name}" if registry else name


def build_args(settings: Settings) -> dict[str, str]:
    return {"PYTHON_IMAGE": settings.python_base_image}


def dockerignore_patterns(context: Path) -> list[str]:
    """The context's .dockerignore patterns, read the way `docker build` reads them."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context: Path, sources: Iterable[str] = ()) -> list[str]:
    """Every path (files and directories) of `context` that the .dockerignore lets through;
    with `sources`, only the context's own files and those under these folders of it."""
    from docker.utils.build import exclude_paths

    # exclude_paths appends to the list it gets: give it a copy.
    paths = exclude_paths(str(context), list(dockerignore_patterns(context)),
                          dockerfile=CONTEXT_DOCKERFILE)
    return sorted(p for p in paths if in_sources(p, sources))


def in_sources(path: str, sources: Iterable[str]) -> bool:
    """Whether a path of the context belongs to one of `sources` (or to none: a top-level file)."""
    folders = tuple(sources)
    parts = path.replace(os.sep, "/").split("/")
    return not folders or len(parts) == 1 or parts[0] in folders


def content_tag(
    context: Path, files: Iterable[str], dockerfile_text: str, args: dict[str, str]
) -> str:
    """sha256 (first 12 hex) of the context's paths + modes + contents, the Dockerfile, the args."""
    digest = hashlib.sha256()

    def feed(kind: str, *parts: bytes) -> None:
        digest.update(kind.encode())
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)

    for rel in sorted(files):
        full = context / rel
        info = os.lstat(full)
        mode = oct(stat.S_IMODE(info.st_mode)).encode()
        name = rel.replace(os.sep, "/").encode()
        if stat.S_ISDIR(info.st_mode):
            feed("dir", name, mode)
        elif stat.S_ISLNK(info.st_mode):
            feed("link", name, mode, os.readlink(full).encode())
        elif stat.S_ISREG(info.st_mode):
            feed("file", name, mode, full.read_bytes())
    feed("dockerfile", dockerfile_text.encode())
    for key, value in sorted(args.items()):
        feed("arg", key.encode(), value.encode())
    return digest.hexdigest()[:12]


def migrations_hash(context: Path, files: Iterable[str], folder: str) -> str:
    """sha256 (first 12 hex) of the migrations the image gets (paths and contents); ''
    when the component has none. The deploy names the migration Job after it."""
    if not folder:
        return ""
    prefix = folder.rstrip("/") + "/"
    chosen = sorted(f for f in files if f.replace(os.sep, "/").startswith(prefix))
    return content_tag(context, chosen, "", {}) if chosen else ""


@dataclass(frozen=True)
class BuildPlan:
    component: Component
    context: Path
    files: tuple[str, ...]
    dockerfile_text: str
    args: dict[str, str]
    repository: str
    tag: str
    migrations: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    def tar(self) -> IO[bytes]:
        """The build context as the engine gets it: the component's filtered folders + our
        Dockerfile."""
        from docker.utils.build import create_archive

        ignore = "\n".join([*dockerignore_patterns(self.context), CONTEXT_DOCKERFILE])
        archive = create_archive(
            root=str(self.context),
            files=list(self.files),
            extra_files=[(".dockerignore", ignore), (CONTEXT_DOCKERFILE, self.dockerfile_text)],
        )
        return cast(IO[bytes], archive)  # given no fileobj, it makes a binary temporary file


def plan(loaded: LoadedSettings, component: str) -> BuildPlan:
    """What would be built for `component`, and under which content-addressed tag."""
    spec = COMPONENTS[component]
    root = source_root(loaded)
    context = root / spec.context
    dockerfile_text = (root / spec.dockerfile).read_text()
    args = build_args(loaded.settings)
    files = tuple(context_files(context, spec.sources))
    return BuildPlan(
        component=spec,
        context=context,
        files=files,
        dockerfile_text=dockerfile_text,
        args=args,
        repository=repository(loaded.settings, component),
        tag=content_tag(context, files, dockerfile_text, args),
        migrations=migrations_hash(context, files, spec.migrations),
    )


def engine(timeout: int = ENGINE_TIMEOUT_S) -> DockerClient:
    """A client of the local engine (DOCKER_HOST etc. honoured), or EngineUnavailable."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(f"cannot reach the Docker engine: {exc}") from None
    return client


@dataclass(frozen=True)
class BuildOutcome:
    image: ImageRef
    skipped: bool
    seconds: float  # the whole build, or (skipped) hashing + the one engine lookup
    base_image: str
    base_size_bytes: int


class BuildProgress:
    """Live progress of one build: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, name: str, log: Log) -> None:
        self.name, self.log = name, log
        self.tail: list[str] = []
        self.live = console().is_terminal and log is say
        self._progress: Any = None
        if self.live:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

            self._width = max(console().width - len(name) - 45, 24)
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=10),
                TextColumn("{task.fields[step]}", style="cyan"),
                TextColumn("{task.fields[layer]}", style="dim"),
                console=console(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(name, total=None, step="", layer="")

    def line(self, text: str) -> None:
        text = text.rstrip()
        if not text.strip():
            return
        self.tail = [*self.tail[-29:], text]
        stripped = text.strip()
        if stripped.startswith("Step ") and " : " in stripped:
            counter, _, instruction = stripped.partition(" : ")
            instruction = " ".join(instruction.split())
            done, _, total = counter.removeprefix("Step ").partition("/")
            if self.live:
                self._progress.update(
                    self._task,
                    completed=max(int(done) - 1, 0) if done.isdigit() else None,
                    total=int(total) if total.isdigit() else None,
                    step=_clip(f"{counter} : {instruction}", self._width),
                    layer="",
                )
            else:
                self.log(f"{self.name}: {counter} : {_clip(instruction, 120)}")
        elif stripped.startswith("--->"):
            layer = stripped.removeprefix("--->").strip()
            if self.live:
                self._progress.update(self._task, layer=_clip(layer, 24))
            else:
                self.log(f"{self.name}:   ---> {layer}")
        elif self.live:
            self._progress.update(self._task, layer=_clip(stripped, 24))

    def close(self, done: bool) -> None:
        if self.live:
            task = self._progress.tasks[0]
            if done and task.total:
                self._progress.update(self._task, completed=task.total, layer="done")
            self._progress.stop()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def stream_lines(chunks: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Split the engine's JSON stream into whole text lines (and pass the raw chunks)."""
    pending = ""
    for chunk in chunks:
        text = chunk.get("stream") or ""
        if text:
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line, {}
        if set(chunk) - {"stream"}:
            yield "", chunk
    if pending:
        yield pending, {}


def _base_size(client: DockerClient, base_image: str, log: Log = say) -> int:
    """The base image's size, to measure what a build adds above it; 0 when unknown.

    A built image outlives its base's tag (`docker rmi`, a prune): the base is then
    pulled again (its layers are still here, so only its manifest travels)."""
    from docker.errors import ImageNotFound

    try:
        return int(client.images.get(base_image).attrs.get("Size") or 0)
    except ImageNotFound:
        pass
    try:
        pull_image(client, base_image, log)
        return int(client.images.get(base_image).attrs.get("Size") or 0)
    except (PullError, ImageNotFound):
        return 0


def up_to_date(
    loaded: LoadedSettings, component: str, known: ImageRef | None, *, log: Log = say
) -> BuildOutcome | None:
    """The image recorded in .state/images.json, when nothing of its context changed and
    the engine still has it under the same ID; None means: ask the full build. Neither
    the docker SDK nor any file's content is read (todo_deploy/images/context_cache.py)."""
    path = context_cache.socket_path()
    if known is None or not known.image_id or path is None:
        return None
    started = time.perf_counter()
    spec = COMPONENTS[component]
    root = source_root(loaded)
    args = build_args(loaded.settings)
    sig = context_cache.signature(root / spec.context, (root / spec.dockerfile).read_text(), args,
                                  spec.sources)
    kept = context_cache.load(loaded.state_dir, component, sig)
    repo = repository(loaded.settings, component)
    if kept is None or f"{repo}:{kept['tag']}" != known.ref:
        return None
    try:
        image = context_cache.inspect_image(known.ref, path)
    except OSError:
        return None  # the full path reports the engine properly
    if image is None or image.get("Id") != known.image_id:
        return None
    size = int(image.get("Size") or 0)
    ref = ImageRef(component, repo, kept["tag"], known.image_id, size, known.added_bytes,
                   kept.get("migrations", ""), known.digest)
    seconds = time.perf_counter() - started
    folders = ", ".join(spec.source_dirs)
    log(f"{component}: {ref.ref} is up to date (no file of {folders} changed), build "
        f"skipped ({seconds:.3f} s)")
    base = args["PYTHON_IMAGE"]
    return BuildOutcome(ref, True, seconds, base, size - known.added_bytes)


def _hash_and_plan(loaded: LoadedSettings, component: str, timeline: Timeline) -> BuildPlan:
    """The component's build plan, its context signature saved for the next run's cache."""
    with timeline.phase(f"hash {component} context"):
        spec = COMPONENTS[component]
        root = source_root(loaded)
        # Taken before the files are read: a write during the hashing shows next time.
        sig = context_cache.signature(root / spec.context, (root / spec.dockerfile).read_text(),
                                      build_args(loaded.settings), spec.sources)
        build = plan(loaded, component)
        context_cache.save(loaded.state_dir, component, sig,
                           {"tag": build.tag, "migrations": build.migrations})
    return build


def _existing_image(client: DockerClient, build: BuildPlan, timeline: Timeline) -> Any:
    """The engine's image for the build's content tag, None when it has none."""
    from docker.errors import ImageNotFound

    with timeline.phase(f"look up {build.ref}"):
        try:
            return client.images.get(build.ref)
        except ImageNotFound:
            return None


def _skipped_outcome(client: DockerClient, build: BuildPlan, image: Any, known: ImageRef | None,
                     seconds: float, log: Log) -> BuildOutcome:
    """The outcome of a build skipped because its content tag exists: sizes from what is
    known of the same image when possible, its registry digest kept when it is the same."""
    component = build.component.name
    base = build.args["PYTHON_IMAGE"]
    log(f"{component}: {build.ref} is up to date, build skipped ({seconds:.3f} s)")
    size = int(image.attrs.get("Size") or 0)
    if known and known.image_id == image.id and known.added_bytes:
        base_size = size - known.added_bytes
    else:
        base_size = _base_size(client, base, log)
    pushed = known.digest if known and known.ref == build.ref and known.image_id == image.id else ""
    ref = ImageRef(component, build.repository, build.tag, image.id, size, size - base_size,
                   build.migrations, pushed)
    return BuildOutcome(ref, True, seconds, base, base_size)


def _stream_build(client: DockerClient, build: BuildPlan, no_cache: bool, log: Log,
                  timeline: Timeline) -> str:
    """Run the engine's build of `build`, showing its progress; the last layer ID it reported.
    Raises BuildError with the output's tail when the engine reports an error."""
    from docker.errors import APIError, DockerException

    component = build.component.name
    progress = BuildProgress(component, log)
    image_id = ""
    ok = False
    build_started = timeline.now()
    try:
        stream = client.api.build(
            fileobj=build.tar(),
            custom_context=True,
            dockerfile=CONTEXT_DOCKERFILE,
            tag=build.ref,
            buildargs=build.args,
            nocache=no_cache,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for line, chunk in stream_lines(stream):
            if line:
                progress.line(line)
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                tail = "\n".join(progress.tail[-15:])
                raise BuildError(f"{component}: build failed: {message.strip()}\n{tail}")
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
        ok = True
    except (APIError, DockerException) as exc:
        raise BuildError(f"{component}: build failed: {exc}") from None
    finally:
        progress.close(ok)
        timeline.add(f"docker build {component}", build_started, timeline.now() - build_started)
    return image_id


def _inspect_built(client: DockerClient, build: BuildPlan, image_id: str, log: Log,
                   timeline: Timeline) -> tuple[Any, int]:
    """The image just built and its base's size; BuildError when the engine has no such image."""
    from docker.errors import ImageNotFound

    with timeline.phase(f"inspect {build.ref}"):
        try:
            image = client.images.get(build.ref)
        except ImageNotFound:
            raise BuildError(
                f"{build.component.name}: the engine reported no error but {build.ref} does not exist"
                + (f" (last built layer {image_id})" if image_id else "")
            ) from None
        return image, _base_size(client, build.args["PYTHON_IMAGE"], log)


def build_image(
    loaded: LoadedSettings,
    component: str,
    *,
    no_cache: bool = False,
    log: Log = say,
    client: DockerClient | None = None,
    known: ImageRef | None = None,
    timeline: Timeline | None = None,
    on_planned: Callable[[ImageRef], None] | None = None,
) -> BuildOutcome:
    """Build one image unless its content tag exists already (then skip in a blink).

    `on_planned` is told the image's ref and migrations (no ID yet) once they are known,
    before the engine builds it: what the next stages will deploy if the build passes."""
    timeline = timeline or Timeline()
    started = time.perf_counter()
    build = _hash_and_plan(loaded, component, timeline)
    client = client or engine()
    base = build.args["PYTHON_IMAGE"]
    image = None if no_cache else _existing_image(client, build, timeline)
    if image is not None:
        return _skipped_outcome(client, build, image, known, time.perf_counter() - started, log)

    with timeline.phase(f"base image {base} present"):
        ensure_image(client, base, log)
    if on_planned is not None:
        on_planned(ImageRef(component, build.repository, build.tag, migrations=build.migrations))
    folders = ", ".join(f"{build.context / s}" for s in build.component.sources)
    log(f"{component}: building {build.ref} from {folders} ({len(build.files)} paths)")
    image_id = _stream_build(client, build, no_cache, log, timeline)
    image, base_size = _inspect_built(client, build, image_id, log, timeline)
    seconds = time.perf_counter() - started
    size = int(image.attrs.get("Size") or 0)
    ref = ImageRef(component, build.repository, build.tag, image.id, size, size - base_size,
                   build.migrations)
    log(
        f"{component}: built {build.ref} in {seconds:.1f} s: {mb(size)} "
        f"({mb(size - base_size)} above {base})"
    )
    return BuildOutcome(ref, False, seconds, base, base_size)


def local_image_id(ref: str) -> str:
    """The ID of `ref` in the local engine, '' when absent (or the engine does not answer):
    one request on its Unix socket, the docker SDK only for other DOCKER_HOSTs."""
    path = context_cache.socket_path()
    if path is not None:
        try:
            found = context_cache.inspect_image(ref, path)
        except OSError:
            return ""
        return str(found.get("Id", "")) if found else ""
    from docker.errors import DockerException

    try:
        return str(engine(timeout=30).images.get(ref).id)
    except (EngineUnavailable, DockerException):
        return ""


def ensure_image(client: DockerClient, ref: str, log: Log = say) -> float:
    """Pull `ref` unless the engine has it; returns the seconds spent pulling (0 if present).

    A first run on a new machine has no base image yet: the build must fetch it
    (with progress, as `docker pull` shows) instead of refusing.
    """
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
        return 0.0
    except ImageNotFound:
        pass
    return pull_image(client, ref, log)


def pull_image(client: DockerClient, ref: str, log: Log = say) -> float:
    """`docker pull ref` with a line (or a live bar) per layer; PullError when it fails."""
    from docker.errors import APIError, DockerException
    from docker.utils import parse_repository_tag

    started = time.perf_counter()
    repository_name, tag = parse_repository_tag(ref)
    log(f"pulling {ref} (not present in the Docker engine yet)")
    progress = BuildProgress(f"pull {ref}", log)
    layers: dict[str, str] = {}
    ok = False
    try:
        stream = client.api.pull(repository_name, tag=tag or "latest", stream=True, decode=True)
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise PullError(_pull_message(ref, message))
            status, layer = chunk.get("status", ""), chunk.get("id", "")
            if layer and status and layer != tag:
                if layers.get(layer) == status and "progressDetail" in chunk:
                    continue  # byte counters: one line per state change is enough
                layers[layer] = status
                done = sum(1 for s in layers.values() if s in _LAYER_DONE)
                progress.line(f"---> {layer}: {status} ({done}/{len(layers)} layers done)")
            elif status:
                progress.line(status)
        ok = True
    except (APIError, DockerException) as exc:
        raise PullError(_pull_message(ref, str(exc))) from None
    finally:
        progress.close(ok)
    seconds = time.perf_counter() - started
    log(f"pulled {ref} in {seconds:.1f} s ({len(layers)} layers)")
    return seconds


_LAYER_DONE = ("Pull complete", "Already exists")


def _pull_message(ref: str, message: str) -> str:
    lowered = message.lower()
    if "not found" in lowered or "manifest unknown" in lowered or "does not exist" in lowered:
        reason = "the registry has no such image or tag"
    elif any(w in lowered for w in ("unauthorized", "denied", "authentication required")):
        reason = "the registry refused access"
    elif any(w in lowered for w in ("timeout", "no such host", "connection refused", "dial tcp")):
        reason = "the registry is unreachable"
    else:
        reason = "the pull failed"
    return f"cannot pull {ref}: {reason}: {message.strip()}"


def mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def ensure_built(
    loaded: LoadedSettings,
    log: Log = say,
    *,
    only: str | None = None,
    no_cache: bool = False,
    client: DockerClient | None = None,
) -> dict[str, BuildOutcome]:
    """Build (or skip, when up to date) the images and record them in .state/images.json.

    For other stages and `inv up`: afterwards `artifacts.load_images(state_dir)`
    names exactly the images that match the current sources.
    """
    names = [only] if only else list(COMPONENTS)
    for name in names:
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}: choose from {', '.join(COMPONENTS)}")
    client = client or engine()
    recorded = load_images(loaded.state_dir)
    outcomes: dict[str, BuildOutcome] = {}
    for name in names:
        outcomes[name] = build_image(
            loaded, name, no_cache=no_cache, log=log, client=client, known=recorded.get(name)
        )
        recorded[name] = outcomes[name].image
        save_images(loaded.state_dir, recorded)
    return outcomes


class LoginError(PushError):
    """The registry refused REGISTRY_USERNAME/REGISTRY_PASSWORD (or could not be reached)."""


def registry_login(settings: Settings, client: DockerClient, log: Log = say) -> bool:
    """Log the client in to IMAGE_REGISTRY's host with REGISTRY_USERNAME/REGISTRY_PASSWORD;
    False (nothing done) without credentials. The login lives in this client only (the
    SDK keeps it in memory for its pushes): nothing is written to ~/.docker/config.json."""
    from docker.errors import APIError, DockerException


    try:
        login = settings.registry_login()
    except AuthFileError as exc:
        raise LoginError(str(exc)) from None
    if login is None:
        return False
    try:
        client.login(username=login.username, password=login.password, registry=login.host,
                     reauth=True)
    except (APIError, DockerException) as exc:
        raise LoginError(login_message(login, str(exc))) from None
    log(f"logged in to {login.host} as {login.username} ({login.source})")
    return True


def login_message(login: Login, message: str) -> str:
    """One line naming the setting to fix; the engine's message never holds the password."""
    first = (message.strip().splitlines() or [""])[0]
    host = login.host
    if any(w in first.lower() for w in ("connection refused", "no such host", "dial tcp",
                                         "timeout")):
        return (f"cannot log in to {host}: the registry is unreachable ({first}); "
                "check IMAGE_REGISTRY and that the registry runs")

    fix = ("check REGISTRY_PASSWORD (and REGISTRY_USERNAME)" if login.source == USER_AND_PASSWORD
           else f"log in again to {host} with that config (`docker login {host}`), or fix "
                f"{login.source}")
    return (f"cannot log in to {host} as {login.username}: the registry refused the "
            f"credentials ({first}); {fix}")


def push_image(image: ImageRef, log: Log = say, client: DockerClient | None = None) -> str:
    """Push one image with progress; returns the manifest digest the registry now serves
    it under ("sha256:...", '' when the engine did not say); PushError with a clear
    reason when it fails."""
    from docker.errors import APIError, DockerException

    if "/" not in image.repository:
        raise PushError(
            f"{image.ref} names no registry: set IMAGE_REGISTRY (e.g. localhost:5000) "
            "and run `inv build --push`"
        )
    client = client or engine()
    registry = image.repository.split("/")[0]
    log(f"{image.component}: pushing {image.ref}")
    progress = BuildProgress(f"push {image.component}", log)
    layers: dict[str, str] = {}
    digest = ""
    ok = False
    try:
        for chunk in client.api.push(image.repository, tag=image.tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise PushError(push_message(image, registry, message))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and str(aux.get("Digest", "")).startswith("sha256:"):
                digest = str(aux["Digest"])
            status, layer = chunk.get("status", ""), chunk.get("id", "")
            if layer and status:
                layers[layer] = status
                pushed = sum(1 for s in layers.values() if s in ("Pushed", "Layer already exists"))
                progress.line(f"---> {layer}: {status} ({pushed}/{len(layers)} layers done)")
            elif status:
                progress.line(status)
        ok = True
    except (APIError, DockerException) as exc:
        raise PushError(push_message(image, registry, str(exc))) from None
    finally:
        progress.close(ok)
    log(f"{image.component}: pushed {image.ref}" + (f" ({digest})" if digest else ""))
    return digest


def push_message(image: ImageRef, registry: str, message: str) -> str:
    lowered = message.lower()
    unreachable = any(
        word in lowered
        for word in ("connection refused", "no such host", "dial tcp", "timeout", "i/o timeout")
    )
    reason = (
        f"the registry {registry} is unreachable" if unreachable else f"the registry {registry} refused it"
    )
    return (
        f"push of {image.ref} failed: {reason}: {message.strip()}. Check IMAGE_REGISTRY, "
        f"that the registry runs and that you are logged in (REGISTRY_USERNAME and "
        f"REGISTRY_PASSWORD, or `docker login {registry}`)."
    )

