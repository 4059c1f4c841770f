"""When new code "serves": the frontend, as a user reaches it, answers with it (issue 22 item 4).

A finished rollout is not enough: the frontend's kept-alive connections may still reach an old
backend pod while it drains. So after a rollout `inv watch` asks GET /api/meta through the
frontend's URL until the answer names a backend pod running the new backend image
(`pod`, the backend's hostname: its pod name) STREAK times in a row, each on a new connection
(a new visitor, whichever frontend pod it lands on). For a new frontend image, the frontend
Service's endpoints must be the new frontend pods only before those answers count.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from todo_deploy.access import frontend_service_name, open_access

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings

STREAK = 3
POLL_S = 0.05

Fetch = Callable[[str], dict[str, Any] | None]
FrontendUrl = Callable[[], contextlib.AbstractContextManager[str]]
# After the rollout: how long the frontend may take to answer with the new code.
TIMEOUT_S = 60.0


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
    """GET <base_url>/api/meta on a new connection each time; None for no (JSON) answer.
    One client for all (making one costs ~0.1 s: its TLS context), keeping no connection."""
    import httpx

    client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))

    def fetch(_: str) -> dict[str, Any] | None:
        try:
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


@contextlib.contextmanager
def user_url(settings: Settings, kube: Any) -> Iterator[str]:
    """The frontend as a user reaches it (NodePort, LoadBalancer, else a port-forward to a
    Ready frontend pod per connection, opened here and closed at the block's end)."""
    with open_access(settings, kube) as access:
        yield access.url


def new_code_served(settings: Settings, kube: Any, rebuilt: dict[str, ImageRef],
                    frontend_url: FrontendUrl | None = None, timeout: float | None = None) -> str | None:
    """After a rollout of the `rebuilt` images: None once the frontend answers with their
    code; otherwise why not (after `timeout`, TIMEOUT_S by default)."""
    if not rebuilt:
        return None  # a chart-only change: no code to tell apart

    def pods(name: str) -> frozenset[str] | None:
        image = rebuilt.get(name)
        return pods_running(kube, settings.namespace, image.ref) if image else None

    new = NewCode(backend_pods=pods("backend"), frontend_pods=pods("frontend"))

    def frontend_switched() -> bool:
        behind = endpoint_pods(kube, settings.namespace, frontend_service_name(settings))
        return bool(behind) and new.frontend_pods is not None and behind <= new.frontend_pods

    try:
        with (frontend_url or (lambda: user_url(settings, kube)))() as url:
            return wait_until_served(new, fetch_meta(url), TIMEOUT_S if timeout is None else timeout,
                                     frontend_ready=frontend_switched)
    except (RuntimeError, OSError) as exc:
        return f"the frontend cannot be reached from here ({exc})"


# ---- live update (issue 24): the synced code, named by the apps themselves -------------------

CODE_HEADER = "X-Code-Version"  # the frontend's TODO_CODE_VERSION on its responses


@dataclass(frozen=True)
class Served:
    """What code answered one GET /api/meta through the frontend: the backend's is the
    body's `code`, the frontend's its X-Code-Version header (None when not named)."""

    backend: str | None
    frontend: str | None

    def of(self, component: str) -> str | None:
        return self.backend if component == "backend" else self.frontend


CodeFetch = Callable[[], Served | None]


def fetch_code(base_url: str, timeout: float = 2.0) -> CodeFetch:
    """GET <base_url>/api/meta on a new connection each time: the code versions it shows
    (None for no JSON answer)."""
    import httpx

    client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))

    def fetch() -> Served | None:
        try:
            answer = client.get(f"{base_url.rstrip('/')}/api/meta")
            if answer.status_code != 200:
                return None
            body = answer.json()
        except (httpx.HTTPError, ValueError):
            return None
        code = body.get("code") if isinstance(body, dict) else None
        return Served(None if code is None else str(code), answer.headers.get(CODE_HEADER))

    return fetch


def shows_code(served: Served | None, expected: dict[str, str]) -> bool:
    """Does the answer name the `expected` code (component -> generation) for each?"""
    return served is not None and all(served.of(c) == g for c, g in expected.items())


def wait_until_code(expected: dict[str, str], fetch: CodeFetch, timeout: float,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> str | None:
    """None once the frontend answered with the `expected` code STREAK times in a row, each
    on a new connection; otherwise what it answered last, when `timeout` ran out."""
    deadline = clock() + timeout
    streak = 0
    last: Served | None = None
    while clock() < deadline:
        last = fetch()
        streak = streak + 1 if shows_code(last, expected) else 0
        if streak >= STREAK:
            return None
        sleep(POLL_S)
    if last is None:
        return "the frontend did not answer /api/meta"
    shown = ", ".join(f"{c} code {last.of(c) or '(not named)'}" for c in sorted(expected))
    return f"the frontend's /api/meta answered with {shown}"


def dev_code_served(settings: Settings, kube: Any, expected: dict[str, str],
                    frontend_url: FrontendUrl | None = None,
                    timeout: float | None = None) -> str | None:
    """After a live update: None once the frontend, as a user reaches it, answers with the
    `expected` code (component -> generation); otherwise why not."""
    try:
        with (frontend_url or (lambda: user_url(settings, kube)))() as url:
            return wait_until_code(expected, fetch_code(url),
                                   TIMEOUT_S if timeout is None else timeout)
    except (RuntimeError, OSError) as exc:
        return f"the frontend cannot be reached from here ({exc})"
