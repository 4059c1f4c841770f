"""Profiles: `.env.NAME` layered over `.env` (`--profile NAME` or TODO_PROFILE=NAME).

A profile is a settings file for one place the app runs (`.env.cloud` for a managed
cluster). When it names its cluster (KUBE_CONTEXT in `.env.NAME`), it is bound to it:
the deploy refuses to send the profile's settings to another context (an environment
KUBE_CONTEXT left over in the shell wins over the file), and refuses to send other
settings (no profile, or another one) to the context a profile claims. `--force`
deploys anyway.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from todo_deploy.config.kubeconfig import KubeconfigError, kubeconfig_paths, load_kubeconfig

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings

PROFILE_ENV = "TODO_PROFILE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# `.env.secrets` is the generated secrets file; `*.example` files are templates.
NOT_PROFILES = frozenset({"secrets", "example"})


def profile_file(name: str) -> str:
    return f".env.{name}"


def available(root: Path) -> list[str]:
    """The profiles `root` has: every `.env.NAME` but the secrets file and templates."""
    found = []
    for path in root.glob(".env.*"):
        name = path.name.removeprefix(".env.")
        if path.is_file() and _NAME.match(name) and name not in NOT_PROFILES:
            found.append(name)
    return sorted(found)


def templates(root: Path) -> list[str]:
    """Profile templates (`.env.NAME.example`) that can be copied to `.env.NAME`."""
    return sorted(p.name for p in root.glob(".env.*.example") if p.name != ".env.example")


def name_problem(name: str, root: Path) -> str:
    """'' when profile `name` exists under `root`, else one line: the file and what exists."""
    if not _NAME.match(name) or name in NOT_PROFILES:
        return (f"profile {name!r}: not a profile name (letters, digits, '-' and '_'; "
                f"not {' or '.join(sorted(NOT_PROFILES))})")
    if (root / profile_file(name)).is_file():
        return ""
    have = ", ".join(available(root)) or "none"
    line = f"profile {name!r}: {root / profile_file(name)} does not exist (profiles here: {have})"
    example = f"{profile_file(name)}.example"
    if (root / example).is_file():
        line += f"; copy {example} to {profile_file(name)} to start one"
    return line


def pinned_context(root: Path, name: str) -> str:
    """The KUBE_CONTEXT profile `name`'s own file sets ('' = it names none)."""
    path = root / profile_file(name)
    values = {k.upper(): v for k, v in dotenv_values(path).items()} if path.is_file() else {}
    return (values.get("KUBE_CONTEXT") or "").strip()


def claims(root: Path) -> dict[str, str]:
    """context -> the profile whose file names it (the first by name when two do)."""
    found: dict[str, str] = {}
    for name in available(root):
        context = pinned_context(root, name)
        if context:
            found.setdefault(context, name)
    return found


def current_context() -> str:
    """The kubeconfig's current-context ('' when there is no kubeconfig or none is set)."""
    try:
        return load_kubeconfig(kubeconfig_paths()).current_context
    except KubeconfigError:
        return ""


def context_refusal(loaded: LoadedSettings, current: str | None = None) -> str | None:
    """Why deploying these settings to their target context is the wrong-cluster accident,
    or None. The target is KUBE_CONTEXT / the provider's context, else `current`
    (the kubeconfig's current-context, read when not given)."""
    settings = loaded.settings
    target = settings.context_name
    if not target:
        target = current_context() if current is None else current
    where = f"context {target!r}" if target else "the current context"
    if loaded.profile:
        pinned = pinned_context(loaded.root, loaded.profile)
        if pinned and pinned != target:
            source = loaded.sources.get("KUBE_CONTEXT", "")
            return (f"profile {loaded.profile} ({profile_file(loaded.profile)}) deploys to context "
                    f"{pinned!r}, but this deploy would go to {where} (KUBE_CONTEXT from {source}); "
                    "unset the override, or pass --force to deploy there anyway")
    owner = claims(loaded.root).get(target) if target else None
    if owner and owner != loaded.profile:
        used = f"profile {loaded.profile}" if loaded.profile else "no profile"
        return (f"context {target!r} belongs to profile {owner} ({profile_file(owner)} names it), "
                f"but this deploy uses {used}: run it with --profile {owner}, or pass --force "
                "to deploy there anyway")
    return None
