"""Chart values files (the VALUES_FILES setting) layered over the workflow's values.

A profile (`.env.NAME`) can name values files for what the settings do not cover:
autoscaling, disruption budgets, resources. Both deploy paths render with them
(`chart_values.helm_values`, which `raw_values` starts from). A file may not set what the
workflow sets from its settings or owns (image tags, Secret names, the checksum,
fullnameOverride, namespace...): chart/values_check.py refuses such a file when the
settings load, naming the file, the key and the setting to use instead; should one get
through anyway (Settings built by hand), the workflow's value wins in `layered()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from todo_deploy.config import Settings


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of two values maps: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def leaf_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every non-map value ('backend.image.tag'); an empty map is a leaf."""
    found: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found |= leaf_paths(value, path + ".")
        else:
            found.add(path)
    return found


def overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def read_values(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise TypeError("is not a map of chart values")
    return data


def load(settings: Settings) -> list[tuple[Path, dict[str, Any]]]:
    """(path, values) of each VALUES_FILES entry, in order."""
    return [(path, read_values(path)) for path in settings.values_paths]


def layered(settings: Settings, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (the workflow's) with the VALUES_FILES layered in: a later file wins over
    an earlier one, and the workflow's own values win over every file."""
    files: dict[str, Any] = {}
    for _, data in load(settings):
        files = deep_merge(files, data)
    return deep_merge(files, values) if files else values


