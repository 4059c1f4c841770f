"""Chart values and Secret data from the one Settings object.

The chart (helm/todo-chatbot) describes every object. `inv deploy --helm`
installs it with `helm_values()`; `inv deploy` renders it in-process with
`raw_values()` (see todo_deploy/chart/manifests.py) and applies the objects itself.
Secrets are never rendered into those objects: `secret_data()` gives the deploy
stages what to put into the Secrets they create through the API, and the chart
only receives the Secrets' names and a checksum of their data.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import ingress, values_files
from todo_deploy.components import ALL, BUILT

if TYPE_CHECKING:
    from todo_deploy.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = PROJECT_ROOT / "helm" / "todo-chatbot"

PART_OF = "todo-chatbot"
# The app.kubernetes.io/managed-by label of what the raw path applies: how it
# tells its own objects (to prune) from a Helm release's.
MANAGED_BY = "todo-deploy"
DRAIN_SECONDS = 5
LOG_LEVEL = "info"

# Secret names (format with release=settings.release_name) and their keys. The
# chart names its Services <release>-<component> for every release name that
# `inv config` accepts (tests/unit/test_parity.py checks it), so
# <release>-postgres is also the bundled database's host.
SECRET_BACKEND = "{release}-backend"  # DATABASE_URL, AUTH_SECRET, PROXY_SECRET, OPENAI_API_KEY[, OPENAI_BASE_URL]
SECRET_FRONTEND = "{release}-frontend"  # SESSION_SECRET, PROXY_SECRET
SECRET_POSTGRES = "{release}-postgres"  # POSTGRES_PASSWORD (bundled mode only)
# .dockerconfigjson (type kubernetes.io/dockerconfigjson), only with REGISTRY_USERNAME and
# REGISTRY_PASSWORD set: the pods' imagePullSecrets (issue 23: 2).
SECRET_REGISTRY = "{release}-registry"

POSTGRES_USER = "todo"
POSTGRES_DB = "todo"
POSTGRES_PORT = 5432


def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def database_url(settings: Settings) -> str:
    """The backend's DATABASE_URL: the bundled PostgreSQL's, or the configured one."""
    if settings.database_mode == "external":
        return settings.database_url.get_secret_value()
    password = quote(settings.postgres_password.get_secret_value(), safe="")
    host = SECRET_POSTGRES.format(release=settings.release_name)
    return f"postgresql://{POSTGRES_USER}:{password}@{host}:{POSTGRES_PORT}/{POSTGRES_DB}"


def external_database_port(settings: Settings) -> int:
    """The port of the external DATABASE_URL (5432 when it names none)."""
    try:
        return urlsplit(settings.database_url.get_secret_value()).port or POSTGRES_PORT
    except ValueError:  # an out-of-range port: the app fails on it with a clearer message
        return POSTGRES_PORT


def public_base_url(url: str) -> str:
    """OPENAI_BASE_URL without credentials (user:password@), for the ConfigMap."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=host))


def secret_data(settings: Settings) -> dict[str, dict[str, str]]:
    """Secret name -> its string data, for the deploy stage to create the Secrets.

    Bundled mode: DATABASE_URL = postgresql://todo:<pw>@<release>-postgres:5432/todo
    and a `<release>-postgres` Secret with POSTGRES_PASSWORD; external mode: the
    configured DATABASE_URL and no postgres Secret. An OPENAI_BASE_URL with
    credentials goes here too (it overrides the ConfigMap's credential-free copy:
    the pods read the Secret after the ConfigMap).
    """
    release = settings.release_name
    backend = {
        "DATABASE_URL": database_url(settings),
        "AUTH_SECRET": settings.auth_secret.get_secret_value(),
        "PROXY_SECRET": settings.proxy_secret.get_secret_value(),
        "OPENAI_API_KEY": settings.openai_api_key.get_secret_value(),
    }
    if public_base_url(settings.openai_base_url) != settings.openai_base_url:
        backend["OPENAI_BASE_URL"] = settings.openai_base_url
    data = {
        SECRET_BACKEND.format(release=release): backend,
        SECRET_FRONTEND.format(release=release): {
            "SESSION_SECRET": settings.session_secret.get_secret_value(),
            "PROXY_SECRET": settings.proxy_secret.get_secret_value(),
        },
    }
    if settings.database_mode == "bundled":
        data[SECRET_POSTGRES.format(release=release)] = {
            "POSTGRES_PASSWORD": settings.postgres_password.get_secret_value(),
        }
    if settings.registry_credentials:  # in the checksum too: new credentials roll the pods
        data[SECRET_REGISTRY.format(release=release)] = {".dockerconfigjson": docker_config(settings)}
    return data


def docker_config(settings: Settings) -> str:
    """The pull Secret's .dockerconfigjson: IMAGE_REGISTRY's host with REGISTRY_USERNAME and
    REGISTRY_PASSWORD (or REGISTRY_AUTH_FILE's entry for it), as `kubectl create secret
    docker-registry` writes it."""
    login = settings.registry_login()
    if login is None:
        raise ValueError("no registry credentials are set")
    return login.docker_config()


def image_pull_secrets(settings: Settings) -> list[dict[str, str]]:
    """The chart's imagePullSecrets: the pull Secret when there are credentials."""
    if not settings.registry_credentials:
        return []
    return [{"name": SECRET_REGISTRY.format(release=settings.release_name)}]


def secret_manifests(settings: Settings) -> list[dict[str, Any]]:
    """The Secrets as objects (type Opaque, `stringData`, app labels) to apply."""
    component = {c.workload: c.label for c in ALL.values()}
    names = {"backend": "todo-backend", "frontend": "todo-frontend", "postgres": "postgresql"}
    objects = []
    pull_secret = SECRET_REGISTRY.format(release=settings.release_name)
    for name, data in secret_data(settings).items():
        suffix = name.rsplit("-", 1)[-1]
        pulling = name == pull_secret
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/dockerconfigjson" if pulling else "Opaque",
                "metadata": {
                    "name": name,
                    "namespace": settings.namespace,
                    "labels": _labels(settings, "registry", "registry") if pulling
                    else _labels(settings, names[suffix], component[suffix]),
                },
                "stringData": dict(data),
            }
        )
    return objects


def secrets_checksum(settings: Settings) -> str:
    """sha256 hex of `secret_data(settings)`: the pods' `checksum/secret` annotation."""
    return _sha256(secret_data(settings))


def app_labels(settings: Settings) -> dict[str, str]:
    """The label selector that finds every object of this app (prune/down/verify)."""
    return {"app.kubernetes.io/instance": settings.release_name, "app.kubernetes.io/part-of": PART_OF}


def _labels(settings: Settings, name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        **app_labels(settings),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": app_version(),
    }


@cache
def app_version() -> str:
    """The chart's appVersion: the `app.kubernetes.io/version` label everywhere."""
    import yaml

    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"])


def default_images() -> dict[str, ImageRef]:
    """Stand-in image refs (never `latest`) for rendering before anything was built."""
    return {
        name: ImageRef(name, c.image_name, "000000000000") for name, c in BUILT.items()
    }


def split_image(image: str) -> tuple[str, str]:
    """'repo[:tag]' or 'repo@sha256:...' -> (repository, tag); the digest form keeps
    the whole reference as the repository and an empty tag."""
    if "@" in image:
        return image, ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = image.rsplit(":", 1)
        return repository, tag
    return image, ""


def helm_values(
    settings: Settings, images: dict[str, ImageRef], node_port: int = 0, dev: bool = False
) -> dict[str, Any]:
    """Chart values derived from settings. No secret values: `existingSecret`
    names + `secretChecksum` only (the deploy stage creates the Secrets first).

    `node_port` keeps the frontend's NodePort when the Service is made again
    (switching raw <-> Helm), so the URL a user has keeps working. `dev` (issue 24:
    `inv watch --dev`, `inv up --dev`) renders the app's pods for live update; the
    value is added only then, so a normal render (and its cache key) is unchanged."""
    release = settings.release_name
    pg_repository, pg_tag = split_image(settings.postgres_image)
    bundled = settings.database_mode == "bundled"
    values = {
        "fullnameOverride": release,
        "config": {
            "llmProvider": settings.effective_llm_provider,
            "llmModel": settings.llm_model,
            "openaiBaseUrl": public_base_url(settings.openai_base_url),
            "drainSeconds": DRAIN_SECONDS,
            "logLevel": LOG_LEVEL,
            "dbProbeSeconds": settings.db_probe_seconds,
            "dbPoolSize": settings.db_pool_size,
        },
        "backend": {
            "replicaCount": settings.backend_replicas,
            "image": {"repository": images["backend"].repository, "tag": images["backend"].tag},
        },
        "frontend": {
            "replicaCount": settings.frontend_replicas,
            "image": {"repository": images["frontend"].repository, "tag": images["frontend"].tag},
            "service": {"type": settings.frontend_service_type}
            | ({"nodePort": node_port}
               if node_port and settings.frontend_service_type == "NodePort" else {}),
        },
        # The frontend's Ingress (issue 23, item 3): INGRESS_HOST / INGRESS_CLASS / INGRESS_TLS.
        "ingress": ingress.chart_values(settings),
        "migration": {"hook": not bundled, "backoffLimit": settings.migration_backoff_limit},
        "database": {
            "mode": settings.database_mode,
            "image": {"repository": pg_repository, "tag": pg_tag},
            "externalPort": POSTGRES_PORT if bundled else external_database_port(settings),
            "maxConnections": settings.database_max_connections,
        },
        "imagePullSecrets": image_pull_secrets(settings),
        "secrets": {
            "existingSecret": {
                "backend": SECRET_BACKEND.format(release=release),
                "frontend": SECRET_FRONTEND.format(release=release),
                "postgres": SECRET_POSTGRES.format(release=release) if bundled else "",
            },
            "secretChecksum": secrets_checksum(settings),
        },
    }
    if dev:
        values["dev"] = {"enabled": True}
    # VALUES_FILES (a profile's chart values, issue 23: 1) under the workflow's own values.
    return values_files.layered(settings, values)


def raw_values(
    settings: Settings, images: dict[str, ImageRef], node_port: int = 0, dev: bool = False
) -> dict[str, Any]:
    """The values of the raw path (`inv deploy`): Helm's, plus the Namespace, the
    managed-by label that marks the objects as the raw path's, and the migration
    as a plain Job (no Helm to run hooks)."""
    values = helm_values(settings, images, node_port, dev)
    values["namespace"] = {"create": True}
    values["managedBy"] = MANAGED_BY
    values["migration"] |= {"hook": False, "key": migration_key(settings, images["backend"])}
    return values


def migration_key(settings: Settings, backend: ImageRef) -> str:
    """What names the raw path's migration Job: the backend image's migrations and the
    database they ran against (a hash of its URL: never the URL itself). The same key
    means the finished Job already brought this database to these migrations' head.
    '' (the image tag names the Job) when the build did not record its migrations."""
    if not backend.migrations:
        return ""
    database = hashlib.sha256(database_url(settings).encode()).hexdigest()
    return hashlib.sha256(f"{backend.migrations}\0{database}".encode()).hexdigest()[:12]
