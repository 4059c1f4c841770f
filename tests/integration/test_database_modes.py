"""The external database modes on the real test cluster (the host's PostgreSQL, plain and with
Neon-style TLS); data survives a restart of every app pod. The bundled mode is the shared
release's (tests/shared_release.py): verify's persistence check restarts its database too."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

from todo_deploy.kube import Kube
from todo_deploy.stages import raw_deploy

pytestmark = pytest.mark.cluster


def call(method: str, url: str, body: dict | None = None, token: str = "") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def wait_serving(base: str, timeout: float = 30.0) -> None:
    """A rollout is done when the API says the pods are Ready; kube-proxy adds them to the
    Service's rules a moment later (until then: connection refused)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            call("GET", f"{base}/ready")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def survives_pod_restarts(s: Any, svc_url: Callable[..., str]) -> None:
    kube = Kube("")
    base = svc_url(kube, s.namespace, f"{s.release}-backend", 8000)
    wait_serving(base)
    user = call("POST", f"{base}/api/auth/signup",
                {"username": f"u{uuid.uuid4().hex[:8]}", "password": "correct-horse-battery"})
    title = f"survive restart {uuid.uuid4().hex[:6]}"
    task = call("POST", f"{base}/api/{user['user_id']}/tasks", {"title": title}, user["token"])

    selector = f"app.kubernetes.io/instance={s.release}"
    pods = [p for p in kube.list("v1", "Pod", s.namespace, selector)
            if p.get("status", {}).get("phase") == "Running"]
    assert pods
    for pod in pods:
        kube.delete("v1", "Pod", pod["metadata"]["name"], s.namespace)
    old = {p["metadata"]["uid"] for p in pods}
    deadline = time.monotonic() + 120  # they drain for DRAIN_SECONDS first
    while time.monotonic() < deadline and old & {
        p["metadata"]["uid"] for p in kube.list("v1", "Pod", s.namespace, selector)
    }:
        time.sleep(1)
    again = raw_deploy.run(s.settings(), log=print)  # waits for every workload to be back
    assert again.passed, [(c.name, c.evidence) for c in again.failures]
    now = {p["metadata"]["uid"] for p in kube.list("v1", "Pod", s.namespace, selector)}
    assert old.isdisjoint(now)
    wait_serving(base)
    read = call("GET", f"{base}/api/{user['user_id']}/tasks/{task['id']}", token=user["token"])
    assert read["title"] == title


def node_ip() -> str:
    node = Kube("").list("v1", "Node")[0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def test_external_postgres_on_the_host(
    scratch: Callable[[], Any], postgres_url: str, svc_url: Callable[..., str]
) -> None:
    parsed = urlparse(postgres_url)
    netloc = parsed.netloc.replace(parsed.hostname or "", node_ip())
    from_pods = urlunparse(parsed._replace(netloc=netloc))
    s = scratch()
    result = raw_deploy.run(s.settings(DATABASE_MODE="external", DATABASE_URL=from_pods), log=print)
    assert result.passed, (
        "external mode failed; if the pods cannot reach PostgreSQL on the node IP, the host's "
        "PostgreSQL must listen on all addresses and accept 10.244.0.0/16: "
        + "; ".join(f"{c.name}: {c.evidence}" for c in result.failures)
    )
    kube = Kube("")
    assert kube.list("apps/v1", "StatefulSet", s.namespace) == []
    survives_pod_restarts(s, svc_url)


def test_external_postgres_neon_style_tls(
    scratch: Callable[[], Any], postgres_url: str, svc_url: Callable[..., str]
) -> None:
    """DATABASE_URL as Neon gives it (`?sslmode=require&channel_binding=require`), against
    the host's PostgreSQL with TLS on (.ci/postgres.sh): the migration Job and the backend
    connect, a task round-trips, and the server sees every pod connection encrypted."""
    import psycopg

    from tests.conftest import require

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        ssl = conn.execute("SHOW ssl").fetchone()
        require(bool(ssl and ssl[0] == "on"), "PostgreSQL with TLS on (ssl = on; .ci/postgres.sh turns it on)")
        name = f"todo_tls_{uuid.uuid4().hex[:8]}"
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        parsed = urlparse(postgres_url)
        netloc = parsed.netloc.replace(parsed.hostname or "", node_ip())
        from_pods = urlunparse(parsed._replace(netloc=netloc, path=f"/{name}",
                                               query="sslmode=require&channel_binding=require"))
        s = scratch()
        result = raw_deploy.run(s.settings(DATABASE_MODE="external", DATABASE_URL=from_pods), log=print)
        assert result.passed, "; ".join(f"{c.name}: {c.evidence}" for c in result.failures)

        kube = Kube("")
        base = svc_url(kube, s.namespace, f"{s.release}-backend", 8000)
        wait_serving(base)
        assert call("GET", f"{base}/ready")["status"] == "ready"
        user = call("POST", f"{base}/api/auth/signup",
                    {"username": f"u{uuid.uuid4().hex[:8]}", "password": "correct-horse-battery"})
        task = call("POST", f"{base}/api/{user['user_id']}/tasks", {"title": "over TLS"}, user["token"])
        listed = call("GET", f"{base}/api/{user['user_id']}/tasks", token=user["token"])
        assert [t["title"] for t in listed["items"]] == ["over TLS"] and listed["items"][0]["id"] == task["id"]

        # The migration ran in the Job, through the same URL.
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT host(a.client_addr), s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.datname = %s", (name,)).fetchall()
        with psycopg.connect(f"{postgres_url.rpartition('/')[0]}/{name}", autocommit=True) as conn:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert revision is not None
        # The backend's pools: connections from the pod network, every one encrypted.
        from_pod = [(addr, ssl) for addr, ssl in rows if addr and not addr.startswith("127.")]
        assert len(from_pod) >= 2, rows
        assert all(ssl for _, ssl in from_pod), rows
        print(f"pod connections to {name}: {len(from_pod)}, all TLS; schema at {revision[0]}")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
