"""The one module that knows helm-python-sdk's internals.

helm-python-sdk 0.2.2's public API covers everything the embedded engine does
except two options its Go library already takes:

- rendering for a given Kubernetes version and API set (`helm template
  --kube-version --api-versions`): `Chart.render()` exposes only name,
  namespace, revision and install/upgrade;
- waiting for Jobs (`--wait-for-jobs`): `Config.install()`/`upgrade()` do not
  pass `wait_for_jobs`, and without it the migration Job is not waited for.

Both go through `_native.call_string` with the same JSON option payloads the
public methods build. tests/unit/test_helm_sdk_adapter.py pins the version and
fails loudly when an upgrade changes these internals, or when the public API
gains the options (then this module should go).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import helm_python  # noqa: TID253 - this module is imported only where Helm runs
from helm_python import _native  # noqa: TID253 - as above

#: The release the internals below were read from (requirements.txt pins it).
KNOWN_VERSION = "0.2.2"

_NO_HANDLE = 0  # the library's "no chart handle / no cancellation context"


def render(
    chart: helm_python.Chart,
    values: dict[str, Any],
    *,
    name: str,
    namespace: str,
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
) -> dict[str, str]:
    """`Chart.render()` plus Capabilities: template path -> rendered text."""
    options: dict[str, Any] = {"name": name, "namespace": namespace, "is_install": True}
    if kube_version:
        options["kube_version"] = kube_version
    if api_versions:
        options["api_versions"] = list(api_versions)
    rendered: dict[str, str] = json.loads(
        _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
    )
    return rendered


def install_or_upgrade(
    config: helm_python.Config,
    chart: helm_python.Chart,
    release: str,
    values: dict[str, Any],
    options: dict[str, Any],
    *,
    upgrade: bool,
) -> dict[str, Any]:
    """`Config.install()`/`upgrade()` with the library's full option set
    (`wait_for_jobs` included): the release summary."""
    payload = _native.call_string(
        "helm_upgrade" if upgrade else "helm_install",
        config._raw(), _native.HANDLE(_NO_HANDLE), chart._raw(), None, release,
        json.dumps(values), json.dumps(options),
    )
    result: dict[str, Any] = json.loads(payload)
    return result
