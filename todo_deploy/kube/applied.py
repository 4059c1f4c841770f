"""What the raw deploy applied last, so that an unchanged object is not applied again.

`.state/applied.json` keeps, per target (context/namespace/release), every object the
last successful `inv deploy` applied: a hash of the manifest it applied and the
object's resourceVersion when that deploy finished. The next deploy skips an object
only when both still hold:

- the manifest it renders now hashes the same (the same spec, labels, image...), and
- the live object still has that resourceVersion. Every write to an object changes
  its resourceVersion: a `kubectl edit`, `kubectl scale`, another field manager's
  apply, a delete and re-create. Such an object is applied again, which restores it.

Status updates change the resourceVersion too (a restarted pod updates its
Deployment's status): such an object is applied again as well, a server-side apply
that changes nothing. The record can only cause extra applies, never a missed one.
The record is written only after a deploy whose gate passed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy import gates

if TYPE_CHECKING:
    from todo_deploy.config import Settings

FILE = "applied.json"


@dataclass(frozen=True)
class Entry:
    hash: str
    resource_version: str
    api_version: str


def key_of(obj: dict[str, Any]) -> str:
    """Kind/namespace/name: one object whatever its API version."""
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def manifest_hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def load(state_dir: Path, scope: str) -> dict[str, Entry]:
    """The record for `scope`, or {} (none yet, another target, unreadable)."""
    try:
        data = json.loads((state_dir / FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("scope") != scope:
        return {}
    try:
        return {key: Entry(**value) for key, value in data.get("objects", {}).items()}
    except TypeError:
        return {}


def save(state_dir: Path, scope: str, entries: dict[str, Entry]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    payload = {"scope": scope,
               "objects": {key: vars(entry) for key, entry in sorted(entries.items())}}
    (state_dir / FILE).write_text(json.dumps(payload, indent=1) + "\n")


def forget(state_dir: Path) -> None:
    """After a failed deploy: the next one applies everything again."""
    try:
        (state_dir / FILE).unlink()
    except FileNotFoundError:
        pass


def unchanged(obj: dict[str, Any], recorded: dict[str, Entry], live: dict[str, str]) -> bool:
    """Same manifest as last applied, and the live object not written since."""
    key = key_of(obj)
    entry = recorded.get(key)
    return (
        entry is not None
        and entry.hash == manifest_hash(obj)
        and bool(entry.resource_version)
        and live.get(key) == entry.resource_version
    )


def why_applied(obj: dict[str, Any], recorded: dict[str, Entry], live: dict[str, str]) -> str:
    """`Kind/name (reason)` for the output: why the deploy applies this object."""
    key = key_of(obj)
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    entry = recorded.get(key)
    if entry is None:
        return f"{name} (new)"
    if key not in live:
        return f"{name} (not in the cluster)"
    if entry.hash != manifest_hash(obj):
        return f"{name} (changed)"
    # The resourceVersion cannot tell an edit from a status update (pods replaced, as
    # verify's self-healing check does): the reason names both, not "written".
    return f"{name} (its resourceVersion changed since the last deploy: an edit, or only its status)"


def scope_of(settings: Settings) -> str:
    """Which deployment the raw path's records (what was applied, the passing renders)
    describe: the deploy gate's scope, computed one way (gates.scope_of)."""
    return gates.scope_of("deploy", settings.context_name, settings.namespace,
                          settings.release_name)


# ---- the renders of the last passing deploys (rollback) ----------------------------------

RENDERS = "passing-renders.json"
KEEP_RENDERS = 3  # the live one and two to go back to


def _read_renders(state_dir: Path, scope: str) -> list[dict[str, Any]]:
    try:
        data = json.loads((state_dir / RENDERS).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("scope") != scope:
        return []
    renders = data.get("renders")
    return renders if isinstance(renders, list) else []


def _write_renders(state_dir: Path, scope: str, renders: list[dict[str, Any]]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / RENDERS).write_text(json.dumps({"scope": scope, "renders": renders}) + "\n")


def without_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Secret values never go to disk: a rollback applies the settings' Secrets as they are."""
    return [o for o in objects if o.get("kind") != "Secret"]


def remember_render(state_dir: Path, scope: str, images: dict[str, str],
                    objects: list[dict[str, Any]]) -> None:
    """After a passing deploy: its objects become the newest render to go back to
    (a deploy that changed nothing adds no entry)."""
    renders = _read_renders(state_dir, scope)
    entry = {"images": images, "objects": without_secrets(objects)}
    if renders and renders[-1].get("objects") == entry["objects"]:
        return
    _write_renders(state_dir, scope, (renders + [entry])[-KEEP_RENDERS:])


def passing_renders(state_dir: Path, scope: str) -> list[dict[str, Any]]:
    """The recorded renders of the last passing deploys, oldest first."""
    return _read_renders(state_dir, scope)


def drop_newest_render(state_dir: Path, scope: str) -> None:
    """After `inv rollback`: the render rolled away from is no longer one to return to."""
    renders = _read_renders(state_dir, scope)
    if renders:
        _write_renders(state_dir, scope, renders[:-1])


def forget_renders(state_dir: Path) -> None:
    """Switching from Helm: the renders recorded before the release are older than what
    it ran, so none is a deploy to go back to."""
    try:
        (state_dir / RENDERS).unlink()
    except FileNotFoundError:
        pass
