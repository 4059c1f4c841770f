"""The kubeconfig files: which are read (KUBECONFIG, else ~/.kube/config) and what they
merge to. Plain files, read by the settings (a profile's context guard) and by the
cluster client (todo_deploy/kube/transport.py) alike."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class KubeconfigError(Exception):
    """The kubeconfig is missing, unreadable, or has no such context."""


@dataclass
class Kubeconfig:
    """The merged kubeconfig: named entries with the folder each came from."""

    current_context: str = ""
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def kubeconfig_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    environ = os.environ if environ is None else environ
    listed = environ.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def load_kubeconfig(paths: Sequence[Path]) -> Kubeconfig:
    import yaml

    merged = Kubeconfig()
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise KubeconfigError(f"cannot read {path}: {exc}") from None
        try:
            # libyaml's safe loader when PyYAML has it (10x faster than the Python one).
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        except yaml.YAMLError as exc:
            raise KubeconfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise KubeconfigError(f"{path} is not a kubeconfig (not a mapping)")
        merged.files.append(path)
        base = path.resolve().parent
        if not merged.current_context and data.get("current-context"):
            merged.current_context = str(data["current-context"])
        for entry in data.get("contexts") or []:
            merged.contexts.setdefault(entry.get("name", ""), entry.get("context") or {})
        for entry in data.get("clusters") or []:
            merged.clusters.setdefault(entry.get("name", ""), (entry.get("cluster") or {}, base))
        for entry in data.get("users") or []:
            merged.users.setdefault(entry.get("name", ""), (entry.get("user") or {}, base))
    if not merged.files:
        raise KubeconfigError(
            "no kubeconfig found at " + ", ".join(str(p) for p in paths)
            + " (set KUBECONFIG or create ~/.kube/config)"
        )
    return merged
