"""VALUES_FILES checked against the chart when the settings load (`load_checked`, what
every task loads them with): a file that is missing, not YAML, sets a value the workflow
sets from its settings (naming the setting to use instead), or that the chart's schema
rejects is a settings error, one line per file."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy.chart import values as chart_values
from todo_deploy.chart.values_files import deep_merge, leaf_paths, overlaps, read_values
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
    "dev.enabled": "`inv watch --dev` / `inv up --dev`",
    "ingress": "INGRESS_HOST / INGRESS_CLASS / INGRESS_TLS",
    "imagePullSecrets": "REGISTRY_USERNAME / REGISTRY_PASSWORD",
}

@cache
def chart_defaults() -> dict[str, Any]:
    return read_values(chart_values.CHART_DIR / "values.yaml")

def _schema_problem(values: dict[str, Any]) -> str:
    import jsonschema

    schema = json.loads((chart_values.CHART_DIR / "values.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(values))
    if error is None:
        return ""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"

def problems(settings: Settings) -> list[str]:
    """One line per VALUES_FILES entry the chart cannot take: missing, not YAML, setting
    a value the workflow sets, or rejected by the chart's schema; each named as written."""
    alone = settings.model_copy(update={"values_files": ""})  # the workflow's values only
    workflow = chart_values.raw_values(alone, chart_values.default_images())
    # dev.enabled too: only `--dev` turns it on (issue 24), a normal deploy never does.
    owned = leaf_paths(chart_values.raw_values(alone, chart_values.default_images(), dev=True))
    found = []
    for name, path in settings.values_entries:
        try:
            data = read_values(path)
        except FileNotFoundError:
            found.append(f"VALUES_FILES: {name} does not exist ({path})")
            continue
        except Exception as exc:  # noqa: BLE001 - YAML errors, a directory, permissions
            found.append(f"VALUES_FILES: {name} cannot be read as chart values: {str(exc).splitlines()[0]}")
            continue
        taken = sorted(p for p in leaf_paths(data) if any(overlaps(p, o) for o in owned))
        for key in taken:
            setting = next((s for k, s in SETTING_FOR.items() if overlaps(key, k)), "")
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
