"""Render the app's Kubernetes objects from the one Settings object.

The raw manifests in `k8s/` (kustomize-compatible, default release name
`todo-chatbot`, namespace `todo`) are the template; this module loads them and
rewrites names, namespace, labels, images, replicas, the service type, the
ConfigMap and the checksum annotations from `Settings` and the built images.
Secrets are never rendered into these objects: `secret_data()` gives the
deploy stage what to put into the Secrets it creates itself, and the Helm chart
only receives the existing Secrets' names (`helm_values()`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = PROJECT_ROOT / "k8s"
CHART_DIR = PROJECT_ROOT / "helm" / "todo-chatbot"

DEFAULT_RELEASE = "todo-chatbot"
DEFAULT_NAMESPACE = "todo"
PART_OF = "todo-chatbot"
DRAIN_SECONDS = 5
LOG_LEVEL = "info"

# Secret names (format with release=settings.release_name) and their keys.
SECRET_BACKEND = "{release}-backend"  # DATABASE_URL, AUTH_SECRET, OPENAI_API_KEY
SECRET_FRONTEND = "{release}-frontend"  # SESSION_SECRET
SECRET_POSTGRES = "{release}-postgres"  # POSTGRES_PASSWORD (bundled mode only)

POSTGRES_USER = "todo"
POSTGRES_DB = "todo"
# The postgres user's uid in known images (the pod must run as it: restricted
# Pod Security forbids root, and initdb needs a uid that has a passwd entry).
# The official image's is 999; the test cluster's Debian-built image uses 100.
POSTGRES_UIDS = {"localcluster/postgres": 100}
POSTGRES_DEFAULT_UID = 999

_REF_KEYS = ("name", "serviceAccountName", "serviceName")


def _release_name(name: str, release: str) -> str:
    if name == DEFAULT_RELEASE:
        return release
    if name.startswith(DEFAULT_RELEASE + "-"):
        return release + name[len(DEFAULT_RELEASE) :]
    return name


def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def database_url(settings: Settings) -> str:
    """The backend's DATABASE_URL: the bundled PostgreSQL's, or the configured one."""
    if settings.database_mode == "external":
        return settings.database_url.get_secret_value()
    password = quote(settings.postgres_password.get_secret_value(), safe="")
    host = SECRET_POSTGRES.format(release=settings.release_name)
    return f"postgresql://{POSTGRES_USER}:{password}@{host}:5432/{POSTGRES_DB}"


def secret_data(settings: Settings) -> dict[str, dict[str, str]]:
    """Secret name -> its string data, for the deploy stage to create the Secrets.

    Bundled mode: DATABASE_URL = postgresql://todo:<pw>@<release>-postgres:5432/todo
    and a `<release>-postgres` Secret with POSTGRES_PASSWORD; external mode: the
    configured DATABASE_URL and no postgres Secret.
    """
    release = settings.release_name
    data = {
        SECRET_BACKEND.format(release=release): {
            "DATABASE_URL": database_url(settings),
            "AUTH_SECRET": settings.auth_secret.get_secret_value(),
            "OPENAI_API_KEY": settings.openai_api_key.get_secret_value(),
        },
        SECRET_FRONTEND.format(release=release): {
            "SESSION_SECRET": settings.session_secret.get_secret_value(),
        },
    }
    if settings.database_mode == "bundled":
        data[SECRET_POSTGRES.format(release=release)] = {
            "POSTGRES_PASSWORD": settings.postgres_password.get_secret_value(),
        }
    return data


def secret_manifests(settings: Settings) -> list[dict[str, Any]]:
    """The Secrets as objects (type Opaque, `stringData`, app labels) to apply."""
    component = {"backend": "backend", "frontend": "frontend", "postgres": "database"}
    names = {"backend": "todo-backend", "frontend": "todo-frontend", "postgres": "postgresql"}
    objects = []
    for name, data in secret_data(settings).items():
        suffix = name.rsplit("-", 1)[-1]
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": name,
                    "namespace": settings.namespace,
                    "labels": _labels(settings, names[suffix], component[suffix]),
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
        "app.kubernetes.io/managed-by": "todo-deploy",
        "app.kubernetes.io/version": app_version(),
    }


def app_version() -> str:
    """The chart's appVersion: the `app.kubernetes.io/version` label everywhere."""
    import yaml

    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"])


def default_images() -> dict[str, ImageRef]:
    """Stand-in image refs (never `latest`) for rendering before anything was built."""
    from todo_deploy.artifacts import ImageRef

    return {
        c: ImageRef(c, f"todo-{c}", "0000000000000000") for c in ("backend", "frontend")
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


def postgres_uid(image: str) -> int:
    """The uid the bundled PostgreSQL image's `postgres` user has."""
    return POSTGRES_UIDS.get(split_image(image)[0], POSTGRES_DEFAULT_UID)


def migration_job_name(settings: Settings, images: dict[str, ImageRef]) -> str:
    """`<release>-migrate-<backend tag>`: a new image runs its migrations once.

    Build tags are 12 hex characters of a content hash; all of them are kept, so
    two images never share (and collide on) one immutable Job.
    """
    tag = re.sub(r"[^a-z0-9]", "", images["backend"].tag.lower())[:12] or "0"
    return f"{settings.release_name}-migrate-{tag}"


def config_data(settings: Settings) -> dict[str, str]:
    """The ConfigMap's data: non-secret app settings only."""
    return {
        "LLM_PROVIDER": settings.effective_llm_provider,
        "LLM_MODEL": settings.llm_model,
        "OPENAI_BASE_URL": settings.openai_base_url,
        "BACKEND_URL": f"http://{settings.release_name}-backend:8000",
        "DRAIN_SECONDS": str(DRAIN_SECONDS),
        "LOG_LEVEL": LOG_LEVEL,
    }


def load_raw(k8s_dir: Path = K8S_DIR) -> list[dict[str, Any]]:
    """The raw objects in kustomization order, exactly as written in `k8s/`."""
    import yaml

    kustomization = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        objects.extend(
            doc for doc in yaml.safe_load_all((k8s_dir / resource).read_text()) if doc
        )
    return objects


def _rename(node: Any, release: str) -> Any:
    """Rewrite default-release names, references and instance labels for `release`."""
    if isinstance(node, list):
        return [_rename(item, release) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "app.kubernetes.io/instance" and value == DEFAULT_RELEASE:
            out[key] = release
        elif key in _REF_KEYS and isinstance(value, str):
            out[key] = _release_name(value, release)
        else:
            out[key] = _rename(value, release)
    return out


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    template = obj.get("spec", {}).get("template")
    return template["spec"] if template else None


def render_manifests(
    settings: Settings, images: dict[str, ImageRef], k8s_dir: Path = K8S_DIR
) -> list[dict[str, Any]]:
    """Every raw object except Secrets, in apply order (Namespace first).

    `images` maps "backend"/"frontend" to the built ImageRef; the exact `.ref`
    is used. Bundled-database objects only when DATABASE_MODE=bundled.
    """
    release, namespace = settings.release_name, settings.namespace
    config = config_data(settings)
    checksums = {"checksum/config": _sha256(config), "checksum/secret": secrets_checksum(settings)}
    component_image = {
        "backend": images["backend"].ref,
        "migration": images["backend"].ref,
        "frontend": images["frontend"].ref,
        "database": settings.postgres_image,
    }
    replicas = {"backend": settings.backend_replicas, "frontend": settings.frontend_replicas}
    pg_uid = postgres_uid(settings.postgres_image)

    rendered = []
    for raw in load_raw(k8s_dir):
        obj = _rename(copy.deepcopy(raw), release)
        meta = obj["metadata"]
        component = meta.get("labels", {}).get("app.kubernetes.io/component", "")
        if component == "database" and settings.database_mode != "bundled":
            continue
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
        else:
            meta["namespace"] = namespace
        for labels in _label_maps(obj):
            if "app.kubernetes.io/version" in labels:
                labels["app.kubernetes.io/version"] = app_version()
        kind = obj["kind"]
        if kind == "ConfigMap":
            obj["data"] = dict(config)
        if kind == "Deployment" and component in replicas:
            obj["spec"]["replicas"] = replicas[component]
        if kind == "Service" and component == "frontend":
            obj["spec"]["type"] = settings.frontend_service_type
        if kind == "Job" and component == "migration":
            meta["name"] = migration_job_name(settings, images)
        pod = _pod_spec(obj)
        if pod is not None:
            for container in pod.get("initContainers", []) + pod["containers"]:
                container["image"] = component_image[component]
            annotations = obj["spec"]["template"]["metadata"].get("annotations")
            if annotations is not None:
                for key, value in checksums.items():
                    if key in annotations:
                        annotations[key] = value
            if component == "database":
                context = pod["securityContext"]
                context["runAsUser"] = context["runAsGroup"] = context["fsGroup"] = pg_uid
        rendered.append(obj)
    return rendered


def _label_maps(obj: dict[str, Any]) -> list[dict[str, str]]:
    maps = [obj["metadata"].get("labels", {})]
    template = obj.get("spec", {}).get("template")
    if template:
        maps.append(template["metadata"].get("labels", {}))
    return maps


def helm_values(settings: Settings, images: dict[str, ImageRef]) -> dict[str, Any]:
    """Chart values derived from settings. No secret values: `existingSecret`
    names + `secretChecksum` only (the deploy stage creates the Secrets first)."""
    release = settings.release_name
    pg_repository, pg_tag = split_image(settings.postgres_image)
    bundled = settings.database_mode == "bundled"
    return {
        "fullnameOverride": release,
        "config": {
            "llmProvider": settings.effective_llm_provider,
            "llmModel": settings.llm_model,
            "openaiBaseUrl": settings.openai_base_url,
            "drainSeconds": DRAIN_SECONDS,
            "logLevel": LOG_LEVEL,
        },
        "backend": {
            "replicaCount": settings.backend_replicas,
            "image": {"repository": images["backend"].repository, "tag": images["backend"].tag},
        },
        "frontend": {
            "replicaCount": settings.frontend_replicas,
            "image": {"repository": images["frontend"].repository, "tag": images["frontend"].tag},
            "service": {"type": settings.frontend_service_type},
        },
        "migration": {"hook": not bundled},
        "database": {
            "mode": settings.database_mode,
            "image": {"repository": pg_repository, "tag": pg_tag},
            "runAsUser": postgres_uid(settings.postgres_image),
        },
        "secrets": {
            "existingSecret": {
                "backend": SECRET_BACKEND.format(release=release),
                "frontend": SECRET_FRONTEND.format(release=release),
                "postgres": SECRET_POSTGRES.format(release=release) if bundled else "",
            },
            "secretChecksum": secrets_checksum(settings),
        },
    }
