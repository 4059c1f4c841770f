"""Chart values files (the VALUES_FILES setting) layered over the workflow's values.

A profile (`.env.NAME`) can name values files for what the settings do not cover:
autoscaling, disruption budgets, resources. Both deploy paths render with them
(`chart_values.helm_values`, which `raw_values` starts from). A file may not set what the
workflow sets from its settings or owns (image tags, Secret names, the checksum,
fullnameOverride, namespace...): `problems()` refuses such a file when the settings
load (`load_checked`, what every task loads them with), naming the file, the key and
the setting to use instead; should one get through anyway (Settings built by hand), the
workflow's value wins in `layered()`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy.config import LoadedSettings, SettingsError, load_settings

if TYPE_CHECKING:
    from todo_deploy.config import Settings

# Chart value paths the workflow fills from a setting: the setting to change instead.
SETTING_FOR = {
    "config.llmProvider": "LLM_PROVIDER",
    "config.llmModel": "LLM_MODEL",
    "config.openaiBaseUrl": "OPENAI_BASE_URL",
    "config.dbProbeSeconds": "DB_PROBE_SECONDS",
    "config.dbPoolSize": "DB_POOL_SIZE",
    "backend.replicaCount": "BACKEND_REPLICAS",
    "frontend.replicaCount": "FRONTEND_REPLICAS",
    "frontend.service.type": "FRONTEND_SERVICE_TYPE",
    "migration.backoffLimit": "MIGRATION_BACKOFF_LIMIT",
    "database.mode": "DATABASE_MODE",
    "database.image.repository": "POSTGRES_IMAGE",
    "database.image.tag": "POSTGRES_IMAGE",
    "database.externalPort": "DATABASE_URL",
    "database.maxConnections": "DATABASE_MAX_CONNECTIONS",
    "ingress": "INGRESS_HOST / INGRESS_CLASS / INGRESS_TLS",
    "imagePullSecrets": "REGISTRY_USERNAME / REGISTRY_PASSWORD",
}


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


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _read(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise TypeError("is not a map of chart values")
    return data


def load(settings: Settings) -> list[tuple[Path, dict[str, Any]]]:
    """(path, values) of each VALUES_FILES entry, in order."""
    return [(path, _read(path)) for path in settings.values_paths]


def layered(settings: Settings, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (the workflow's) with the VALUES_FILES layered in: a later file wins over
    an earlier one, and the workflow's own values win over every file."""
    files: dict[str, Any] = {}
    for _, data in load(settings):
        files = deep_merge(files, data)
    return deep_merge(files, values) if files else values


@cache
def chart_defaults() -> dict[str, Any]:
    from todo_deploy.chart.values import CHART_DIR

    return _read(CHART_DIR / "values.yaml")


def _schema_problem(values: dict[str, Any]) -> str:
    import json

    import jsonschema

    from todo_deploy.chart.values import CHART_DIR

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(values))
    if error is None:
        return ""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


def problems(settings: Settings) -> list[str]:
    """One line per VALUES_FILES entry the chart cannot take: missing, not YAML, setting
    a value the workflow sets, or rejected by the chart's schema; each named as written."""
    from todo_deploy.chart import values as chart_values

    alone = settings.model_copy(update={"values_files": ""})  # the workflow's values only
    workflow = chart_values.raw_values(alone, chart_values.default_images())
    owned = leaf_paths(workflow)
    found = []
    for name, path in settings.values_entries:
        try:
            data = _read(path)
        except FileNotFoundError:
            found.append(f"VALUES_FILES: {name} does not exist ({path})")
            continue
        except Exception as exc:  # noqa: BLE001 - YAML errors, a directory, permissions
            found.append(f"VALUES_FILES: {name} cannot be read as chart values: {str(exc).splitlines()[0]}")
            continue
        taken = sorted(p for p in leaf_paths(data) if any(_overlaps(p, o) for o in owned))
        for key in taken:
            setting = next((s for k, s in SETTING_FOR.items() if _overlaps(key, k)), "")
            instead = f"set {setting} instead" if setting else "the workflow owns it"
            found.append(f"VALUES_FILES: {name} sets {key}, which the workflow sets from its "
                         f"settings: {instead}")
        if taken:
            continue
        schema = _schema_problem(deep_merge(deep_merge(chart_defaults(), workflow), data))
        if schema:
            found.append(f"VALUES_FILES: {name} is rejected by the chart's schema: {schema}")
    return found


def load_checked(
    root: Path | None = None, environ: dict[str, str] | None = None, profile: str | None = None
) -> LoadedSettings:
    """`load_settings`, with VALUES_FILES the chart cannot take refused like any bad setting
    (one SettingsError line per file). The check needs the chart, a floor above the
    settings: so it is made here, for everything that loads settings to deploy."""
    loaded = load_settings(root, environ, profile)
    if loaded.settings.values_entries and (found := problems(loaded.settings)):
        raise SettingsError(found)
    return loaded
