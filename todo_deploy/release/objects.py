"""The app's release on the cluster, as both deploy stages and `inv down` handle it: its
label selectors, its Namespace (Pod Security "restricted") and Secrets (made from the
settings through the API, never in YAML), whether a Helm release owns it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from todo_deploy.chart import values as chart_values
from todo_deploy.chart.ingress import ensure_tls_secret
from todo_deploy.kube import Kube, label_selector, switch

if TYPE_CHECKING:
    from todo_deploy.config import Settings


# Pod Security Standards: the app's namespace enforces "restricted".
PSS_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}

def raw_selector(settings: Settings) -> str:
    return label_selector({**chart_values.app_labels(settings), "app.kubernetes.io/managed-by": chart_values.MANAGED_BY})

def app_selector(settings: Settings) -> str:
    return label_selector(chart_values.app_labels(settings))

def secret_objects(settings: Settings) -> list[dict[str, Any]]:
    """The Secrets to apply, with base64 `data` (deterministic for no-op re-applies)."""
    objects = []
    for obj in chart_values.secret_manifests(settings):
        obj = dict(obj)
        string_data = obj.pop("stringData", {})
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
        objects.append(obj)
    return objects

def ensure_secrets(kube: Kube, settings: Settings) -> list[str]:
    """Create/update the Secrets through the API; returns their names (never values)."""
    names = []
    for obj in secret_objects(settings):
        kube.apply(obj)
        names.append(obj["metadata"]["name"])

    return names + ensure_tls_secret(kube, settings)  # INGRESS_TLS=self-signed's

def namespace_objects(settings: Settings, rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Namespace(s) to apply, with the restricted Pod Security labels."""
    namespaces = [o for o in rendered if o["kind"] == "Namespace"] or [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": settings.namespace}}
    ]
    out = []
    for ns in namespaces:
        labels = {**PSS_LABELS, **(ns["metadata"].get("labels") or {})}
        out.append({**ns, "metadata": {**ns["metadata"], "labels": labels}})
    return out

def ensure_namespace(kube: Kube, settings: Settings, rendered: list[dict[str, Any]]) -> None:
    for ns in namespace_objects(settings, rendered):
        kube.apply(ns)

def parallel(fn: Callable[[Any], Any], items: list[Any], workers: int = 8) -> list[Any]:
    """fn over items on a few threads (the API answers requests concurrently); results
    in order; the first exception is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))

def helm_release_present(kube: Kube, settings: Settings) -> bool:
    """The release's record is in the namespace (switch.release_record: its revision Secrets)."""
    return bool(switch.release_record(kube, settings))
