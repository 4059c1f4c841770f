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

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = PROJECT_ROOT / "k8s"
CHART_DIR = PROJECT_ROOT / "helm" / "todo-chatbot"

DEFAULT_RELEASE = "todo-chatbot"
DEFAULT_NAMESPACE = "todo"

# Secret names (format with release=settings.release_name) and their keys.
SECRET_BACKEND = "{release}-backend"  # DATABASE_URL, AUTH_SECRET, OPENAI_API_KEY
SECRET_FRONTEND = "{release}-frontend"  # SESSION_SECRET
SECRET_POSTGRES = "{release}-postgres"  # POSTGRES_PASSWORD (bundled mode only)


def secret_data(settings: Settings) -> dict[str, dict[str, str]]:
    """Secret name -> its string data, for the deploy stage to create the Secrets.

    Bundled mode: DATABASE_URL = postgresql://todo:<pw>@<release>-postgres:5432/todo
    and a `<release>-postgres` Secret with POSTGRES_PASSWORD; external mode: the
    configured DATABASE_URL and no postgres Secret.
    """
    raise NotImplementedError


def secret_manifests(settings: Settings) -> list[dict[str, Any]]:
    """The Secrets as objects (type Opaque, `stringData`, app labels) to apply."""
    raise NotImplementedError


def secrets_checksum(settings: Settings) -> str:
    """sha256 hex of `secret_data(settings)`: the pods' `checksum/secret` annotation."""
    raise NotImplementedError


def app_labels(settings: Settings) -> dict[str, str]:
    """The label selector that finds every object of this app (prune/down/verify)."""
    raise NotImplementedError


def migration_job_name(settings: Settings, images: dict[str, ImageRef]) -> str:
    """`<release>-migrate-<first 8 chars of the backend tag>`."""
    raise NotImplementedError


def render_manifests(settings: Settings, images: dict[str, ImageRef]) -> list[dict[str, Any]]:
    """Every raw object except Secrets, in apply order (Namespace first).

    `images` maps "backend"/"frontend" to the built ImageRef; the exact `.ref`
    is used. Bundled-database objects only when DATABASE_MODE=bundled.
    """
    raise NotImplementedError


def helm_values(settings: Settings, images: dict[str, ImageRef]) -> dict[str, Any]:
    """Chart values derived from settings. No secret values: `existingSecret`
    names + `secretChecksum` only (the deploy stage creates the Secrets first)."""
    raise NotImplementedError
