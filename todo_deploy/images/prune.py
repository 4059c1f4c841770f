"""`inv prune`: remove the project's own old image tags from the local Docker engine.

Every edit builds a new content-addressed tag (~266 MB for the backend) and
nothing else removes the old ones. Only tags this workflow makes are candidates:
the repositories the settings name (`todo-backend`, `todo-frontend`, behind
IMAGE_REGISTRY when set) with a content tag (12 hex characters, `images.content_tag`).
Per repository the newest KEEP_IMAGE_TAGS stay, and so does, always, any tag
that the last build or the current deployment recorded, that a pod of the cluster
runs, or that a container of the engine (running or stopped) was made from.
A tag is removed without `force`: the engine refuses what something still uses.

As mature tools do: `docker image prune` removes only after asking, so `inv prune`
only lists what it would remove unless given `--yes`; skaffold cleans up its own
images without asking, so after each build that built something the tags beyond
the newest KEEP_IMAGE_TAGS are removed (KEEP_IMAGE_TAGS=0 turns that off).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from todo_deploy import images
from todo_deploy.artifacts import load_images
from todo_deploy.components import BUILT
from todo_deploy.gate_details import DeployDetails
from todo_deploy.gates import current_deployment, scopes_for
from todo_deploy.images import repository
from todo_deploy.kube import Kube, KubeError

if TYPE_CHECKING:
    from docker import DockerClient

    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.gates import GateResult

CONTENT_TAG = re.compile(r"[0-9a-f]{12}")  # images.content_tag: nothing else is ours to remove
Log = Callable[[str], None]


@dataclass(frozen=True)
class Tag:
    repository: str
    tag: str
    image_id: str
    created: str  # ISO time the engine reports
    size_bytes: int = 0

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class Plan:
    remove: list[Tag] = field(default_factory=list)
    keep: list[tuple[Tag, str]] = field(default_factory=list)  # with why
    notes: list[str] = field(default_factory=list)  # what could not be checked

    @property
    def freed_bytes(self) -> int:
        """An upper bound: layers shared with a kept image are not freed."""
        return sum(t.size_bytes for t in self.remove)


def own_repositories(settings: Settings) -> list[str]:
    return [repository(settings, name) for name in BUILT]


def own_tags(client: DockerClient, repositories: Iterable[str]) -> list[Tag]:
    """Every content tag of `repositories` in the engine."""
    found = []
    for repo in repositories:
        for image in client.images.list(name=repo):
            for ref in image.tags:
                name, _, tag = ref.rpartition(":")
                if name == repo and CONTENT_TAG.fullmatch(tag):
                    image_id = cast(str, image.id)  # the stub's Model.id is optional; a listed image has one
                    found.append(Tag(repo, tag, image_id, _iso(image.attrs.get("Created")),
                                     int(image.attrs.get("Size") or 0)))
    return found


def _iso(created: Any) -> str:
    """The engine's creation time (epoch seconds in a listing, ISO in an inspect) as ISO."""
    if isinstance(created, int | float):
        return datetime.fromtimestamp(created, UTC).isoformat(timespec="seconds")
    return str(created or "")


def plan(tags: list[Tag], keep: int, protected: dict[str, str]) -> Plan:
    """Keep the newest `keep` tags of each repository and every protected one.

    `protected` maps an image reference or an image ID to why it must stay."""
    result = Plan()
    by_repo: dict[str, list[Tag]] = {}
    for tag in tags:
        by_repo.setdefault(tag.repository, []).append(tag)
    for repo_tags in by_repo.values():
        repo_tags.sort(key=lambda t: t.created, reverse=True)
        for index, tag in enumerate(repo_tags):
            why = protected.get(tag.ref) or protected.get(tag.image_id)
            if why:
                result.keep.append((tag, why))
            elif index < keep:
                result.keep.append((tag, f"one of the newest {keep}"))
            else:
                result.remove.append(tag)
    return result


# ---- what must stay --------------------------------------------------------------------------


def recorded_refs(loaded: LoadedSettings) -> dict[str, str]:
    """The last build's images and the current deployment's."""
    found = {ref.ref: "the last build" for ref in load_images(loaded.state_dir).values()}
    found.update({ref.image_id: "the last build" for ref in load_images(loaded.state_dir).values()
                  if ref.image_id})
    deployment = current_deployment(loaded.state_dir, scopes_for(loaded.settings)["deploy"])
    if deployment is not None:
        found.update({ref: "the last deploy" for ref in DeployDetails.of(deployment).images.values()})
    return found


def pod_images(pods: list[dict[str, Any]]) -> dict[str, str]:
    """image reference or ID -> "pod <ns>/<name>" for every container of `pods`."""
    found = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        who = f"pod {meta.get('namespace', '')}/{meta.get('name', '')} runs it"
        spec, state = pod.get("spec") or {}, pod.get("status") or {}
        for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            found[container.get("image", "")] = who
        for container in state.get("containerStatuses") or []:
            image_id = container.get("imageID", "").rpartition("sha256:")[2]
            if image_id:
                found[f"sha256:{image_id}"] = who
    return found


def cluster_pods(settings: Settings) -> tuple[list[dict[str, Any]], str]:
    """Every pod the cluster shows us (all namespaces, else ours), and a note when not all."""
    try:
        kube = Kube(settings.context_name)
    except KubeError as exc:
        return [], f"the cluster's pods were not checked ({exc})"
    try:
        return kube.request("GET", "/api/v1/pods", timeout=10).get("items", []), ""
    except KubeError as everywhere:
        try:
            pods = kube.list("v1", "Pod", settings.namespace)
        except KubeError:
            return [], f"the cluster's pods were not checked ({everywhere})"
        return pods, f"only namespace {settings.namespace}'s pods were checked ({everywhere})"


def container_images(client: DockerClient) -> dict[str, str]:
    """image ID -> why, for every container of the engine, running or stopped."""
    found = {}
    for container in client.containers.list(all=True, sparse=True):  # one listing, no inspects
        names = container.attrs.get("Names") or [cast(str, container.id)[:12]]  # listed: has an id
        found[container.attrs.get("ImageID", "")] = f"container {names[0].lstrip('/')} uses it"
    return found


def protected(loaded: LoadedSettings, client: DockerClient,
              pods: Callable[[Settings], tuple[list[dict[str, Any]], str]] = cluster_pods,
              ) -> tuple[dict[str, str], list[str]]:
    listed, note = pods(loaded.settings)
    found = {**container_images(client), **pod_images(listed), **recorded_refs(loaded)}
    return found, [note] if note else []


# ---- doing it --------------------------------------------------------------------------------


def make_plan(loaded: LoadedSettings, client: DockerClient, keep: int,
              pods: Callable[[Settings], tuple[list[dict[str, Any]], str]] = cluster_pods) -> Plan:
    keep_these, notes = protected(loaded, client, pods)
    result = plan(own_tags(client, own_repositories(loaded.settings)), keep, keep_these)
    result.notes.extend(notes)
    return result


def remove(client: DockerClient, result: Plan) -> Plan:
    """Untag each tag of `result.remove`; one the engine refuses (something still uses
    it) moves to `keep` with the engine's reason. Returns what was done."""
    from docker.errors import APIError

    done = Plan(keep=list(result.keep), notes=list(result.notes))
    for tag in result.remove:
        try:
            client.images.remove(tag.ref, force=False, noprune=False)
            done.remove.append(tag)
        except APIError as exc:
            done.keep.append((tag, f"the engine refused: {exc.explanation or exc}"))
    return done


def describe(result: Plan, removed: bool) -> list[str]:
    verb = "removed" if removed else "would remove"
    lines = [f"{verb} {t.ref} ({t.image_id[7:19]}, {t.created[:19]})" for t in result.remove]
    lines += [f"keep {t.ref}: {why}" for t, why in result.keep]
    lines += result.notes
    megabytes = result.freed_bytes / 1e6
    lines.append(f"{verb} {len(result.remove)} tag(s), up to {megabytes:.0f} MB; kept "
                 f"{len(result.keep)}" + ("" if removed or not result.remove
                                          else "; `inv prune --yes` removes them"))
    return lines


def wanted_after(loaded: LoadedSettings, result: GateResult) -> bool:
    """KEEP_IMAGE_TAGS is on and the build made a new image (a skipped one adds no tag)."""
    images = (result.details.get("images") or {}).values()
    return loaded.settings.keep_image_tags > 0 and any(not v.get("skipped") for v in images)


def after_build(loaded: LoadedSettings, result: GateResult, log: Log) -> None:
    """The kept-last-N clean-up after a build that built something; never fails the build."""
    keep = loaded.settings.keep_image_tags
    if not wanted_after(loaded, result):
        return
    try:
        client = images.engine()
        done = remove(client, make_plan(loaded, client, keep))
    except Exception as exc:  # noqa: BLE001 - a clean-up must not fail the build it follows
        log(f"prune: old image tags left in place ({type(exc).__name__}: {exc})")
        return
    if done.remove:
        log(f"prune: removed {len(done.remove)} old image tag(s) beyond the newest {keep} "
            f"(KEEP_IMAGE_TAGS; 0 keeps all): {', '.join(t.ref for t in done.remove)}")


def after_build_in_background(loaded: LoadedSettings, result: GateResult, log: Log) -> None:
    """`after_build` beside what follows the build (the deploy of `inv up`/`inv watch` is not
    kept waiting for the engine and cluster listings); a thread the interpreter waits for
    at exit, so `inv build` still finishes the clean-up."""
    if not wanted_after(loaded, result):
        return
    threading.Thread(target=after_build, args=(loaded, result, log),
                     name="prune-old-image-tags", daemon=False).start()
