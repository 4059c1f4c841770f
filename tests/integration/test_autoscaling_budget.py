"""Drill (issue 23: 4): the cloud profile's backend scaled by hand to the most pods the
connection budget counts for it — twice the HPA's maxReplicas, a rollout's surge at the
HPA's maximum — under load, against the bundled PostgreSQL's max_connections: no request
fails for want of a connection, and the database never holds more than the budget said.

The values are the cloud profile's (profiles/values-cloud.yaml with .env.cloud.example's
DB_POOL_SIZE=4, DATABASE_MAX_CONNECTIONS=100), HPA and PDB included: the raw deploy renders
them in the versions this v1.20 cluster serves (autoscaling/v2beta2, policy/v1beta1). The
cluster has no metrics API, so the HPA could never scale: it is removed and the pods are
scaled by hand to the surge at its maximum, where nothing scales them back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from bench.client import ApiUser, signup
from bench.stack import kubectl
from tests.integration.conftest import Scratch, poll_until
from todo_deploy.config.connection_budget import Budget
from todo_deploy.kube import Kube
from todo_deploy.stages import raw_deploy as raw_stage

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
CLOUD_VALUES = ROOT / "profiles" / "values-cloud.yaml"
POOL_SIZE, MAX_CONNECTIONS, CLIENTS, FLOOD_S = 4, 100, 40, 12.0


def hpa_max() -> int:
    return int(yaml.safe_load(CLOUD_VALUES.read_text())["backend"]["autoscaling"]["maxReplicas"])


def database_connections(namespace: str, pod: str) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    out = kubectl("-n", namespace, "exec", pod, "--", "sh", "-c",
                  f'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U todo -d todo -tAc "{query}"').stdout
    return int(out.strip()) - 1  # this psql's own


def flood(http: httpx.Client, user: ApiUser, until: float, n: int) -> list[tuple[int, str]]:
    seen = []
    while time.monotonic() < until:
        if n % 2:
            response = http.get(user.path("tasks"), params={"limit": 50}, headers=user.headers)
        else:
            response = http.post(user.path("tasks"), json={"title": f"t{n}"}, headers=user.headers)
        seen.append((response.status_code, response.text[:200] if response.status_code >= 500 else ""))
        n += 2
    return seen


def test_the_cloud_profile_at_its_counted_maximum_runs_out_of_no_connection(
        scratch: Callable[[], Scratch], tmp_path: Path) -> None:
    # Ten backend pods must fit the one test node beside the other tests' deployments: small
    # CPU and memory requests (this drill is about connections, not capacity).
    small = tmp_path / "small-requests.yaml"
    small.write_text(yaml.safe_dump({
        "backend": {"resources": {"requests": {"cpu": "10m", "memory": "64Mi"},
                                  "limits": {"cpu": "1", "memory": "256Mi"}}}}))
    s = scratch()
    loaded = s.settings(DB_POOL_SIZE=str(POOL_SIZE), DATABASE_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
                        VALUES_FILES=f"{CLOUD_VALUES},{small}")
    result = raw_stage.run(loaded, log=lambda _: None)
    assert result.passed, [f"{c.name}: {c.evidence}" for c in result.failures]
    kube = Kube()  # (rendered for autoscaling/v2 or policy/v1, the apply would have failed: 404)
    for version, kind in (("autoscaling/v2beta2", "HorizontalPodAutoscaler"),
                          ("policy/v1beta1", "PodDisruptionBudget")):
        for component in ("backend", "frontend"):
            assert kube.get(version, kind, f"{s.release}-{component}", s.namespace), (kind, component)
    kubectl("-n", s.namespace, "delete", "hpa", "--all")

    pods = 2 * hpa_max()  # a rollout's surge at the HPA's maximum
    budget = Budget(backend_replicas=hpa_max(), pool_size=POOL_SIZE, max_connections=MAX_CONNECTIONS)
    assert budget.pods == pods and budget.problem() is None
    kubectl("-n", s.namespace, "scale", f"deployment/{s.release}-backend", f"--replicas={pods}")
    kubectl("-n", s.namespace, "rollout", "status", f"deployment/{s.release}-backend", "--timeout=300s",
            timeout=320)

    svc = kube.get("v1", "Service", f"{s.release}-backend", s.namespace)
    assert svc is not None
    base = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    users = poll_until(lambda: _signups(base), bool, 60, 1.0)
    postgres = f"{s.release}-postgres-0"
    counts: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts.append(database_connections(s.namespace, postgres))
            time.sleep(0.3)

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    with httpx.Client(base_url=base, timeout=30, limits=limits) as http, \
            ThreadPoolExecutor(max_workers=CLIENTS + 1) as pool:
        sampler = pool.submit(sample)
        until = time.monotonic() + FLOOD_S
        clients = [pool.submit(flood, http, users[n % len(users)], until, n) for n in range(CLIENTS)]
        seen = [answer for client in clients for answer in client.result()]
        stop.set()
        sampler.result()

    most = max(counts)
    print(f"{pods} backend pods, {len(seen)} requests; database connections: most {most}, "
          f"budget {budget.needed} of {MAX_CONNECTIONS}")
    assert len(seen) > 100
    assert most <= budget.needed, f"{most} connections; the budget counted {budget.needed}"
    # every pod's task-pages pool opens its connections at start: the drill did reach the pods
    assert most >= pods * POOL_SIZE, most
    wanting = [text for status, text in seen if status >= 500 and "busy" not in text.lower()]
    assert not wanting, wanting[:5]
    logs = kubectl("-n", s.namespace, "logs", "--prefix", "--tail=2000",
                   "-l", "app.kubernetes.io/component=backend", check=False).stdout
    assert "too many clients" not in logs


def _signups(base: str) -> list[ApiUser] | None:
    try:
        return [signup(base) for _ in range(4)]
    except httpx.HTTPError:
        return None
