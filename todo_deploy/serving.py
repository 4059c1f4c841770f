"""When new code "serves": the frontend, as a user reaches it, answers with it (issue 22 item 4).

A finished rollout is not enough: the frontend's kept-alive connections may still reach an old
backend pod while it drains. So after a rollout `inv watch` asks GET /api/meta through the
frontend's URL until the answer names a backend pod running the new backend image
(`pod`, the backend's hostname: its pod name) STREAK times in a row, each on a new connection
(a new visitor, whichever frontend pod it lands on). For a new frontend image, the frontend
Service's endpoints must be the new frontend pods only before those answers count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

STREAK = 3
POLL_S = 0.05

Fetch = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class NewCode:
    """What the answer must show: the pods that run the new images (None: not changed)."""

    backend_pods: frozenset[str] | None
    frontend_pods: frozenset[str] | None


def pods_running(kube: Any, namespace: str, image: str) -> frozenset[str]:
    """The pods (not being deleted) whose containers run `image`."""
    names = set()
    for pod in kube.list("v1", "Pod", namespace):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if any(c.get("image") == image for c in pod.get("spec", {}).get("containers", [])):
            names.add(pod["metadata"]["name"])
    return frozenset(names)


def endpoint_pods(kube: Any, namespace: str, service: str) -> frozenset[str]:
    """The pods behind `service` now (ready or not): where a new connection can land."""
    endpoints = kube.get("v1", "Endpoints", service, namespace) or {}
    return frozenset(
        address.get("targetRef", {}).get("name", "")
        for subset in endpoints.get("subsets") or []
        for address in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []))


def fetch_meta(base_url: str, timeout: float = 2.0) -> Callable[[str], dict[str, Any] | None]:
    """GET <base_url>/api/meta on a new connection each time; None for no (JSON) answer."""

    def fetch(_: str) -> dict[str, Any] | None:
        try:
            with httpx.Client(timeout=timeout) as client:
                answer = client.get(f"{base_url.rstrip('/')}/api/meta")
            return answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    return fetch


def shows_new_code(meta: dict[str, Any] | None, new: NewCode) -> bool:
    if meta is None:
        return False
    return new.backend_pods is None or meta.get("pod") in new.backend_pods


def wait_until_served(new: NewCode, fetch: Fetch, timeout: float,
                      frontend_ready: Callable[[], bool] = lambda: True,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> str | None:
    """None once the frontend answered with the new code STREAK times in a row; otherwise
    what it answered last (for the message) when `timeout` ran out."""
    deadline = clock() + timeout
    streak = 0
    last: dict[str, Any] | None = None
    frontend_switched = new.frontend_pods is None
    while clock() < deadline:
        if not frontend_switched:
            frontend_switched = frontend_ready()
        last = fetch("/api/meta")
        streak = streak + 1 if frontend_switched and shows_new_code(last, new) else 0
        if streak >= STREAK:
            return None
        sleep(POLL_S)
    if not frontend_switched:
        return "the frontend Service still sends new connections to old frontend pods"
    if last is None:
        return "the frontend did not answer /api/meta"
    return f"the frontend's /api/meta answered from backend pod {last.get('pod', '(not named)')}"
