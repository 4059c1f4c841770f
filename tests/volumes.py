"""Return the test cluster's Released volumes to its pool.

localcluster has no dynamic provisioner: it pre-creates 12 hostPath
PersistentVolumes with reclaimPolicy Retain, so every PVC a test deletes leaves
its volume Released and unusable (minikube's provisioner would delete it). The
suite would run out after a dozen bundled-database deployments. This wipes a
Released volume whose claim's namespace no longer exists and makes it Available
again. It touches only hostPath volumes under localcluster's state folder.
Run as `python3 -m tests.volumes`, and by tests/conftest.py around each session.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

POOL_ROOT = Path("/var/lib/localcluster/volumes")


def _kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, input=stdin, timeout=30, check=False
    )


def recyclable(volumes: list[dict], live_namespaces: set[str]) -> list[dict]:
    """Released pool volumes whose claim's namespace is gone."""
    chosen = []
    for pv in volumes:
        spec, status = pv.get("spec", {}), pv.get("status", {})
        path = Path(spec.get("hostPath", {}).get("path", "/nonexistent"))
        claim_ns = (spec.get("claimRef") or {}).get("namespace")
        if (
            status.get("phase") == "Released"
            and POOL_ROOT in path.parents
            and claim_ns not in live_namespaces
        ):
            chosen.append(pv)
    return chosen


def recycle() -> list[str]:
    """Recycle what can be recycled; returns the volume names made Available."""
    pvs = _kubectl("get", "pv", "-o", "json")
    nss = _kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}")
    if pvs.returncode != 0 or nss.returncode != 0:
        return []
    recycled = []
    for pv in recyclable(json.loads(pvs.stdout)["items"], set(nss.stdout.split())):
        path = Path(pv["spec"]["hostPath"]["path"])
        if path.is_dir():
            for child in path.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        name = pv["metadata"]["name"]
        patch = json.dumps({"spec": {"claimRef": None}})
        if _kubectl("patch", "pv", name, "--type=merge", "-p", patch).returncode == 0:
            recycled.append(name)
    return recycled


def available(volumes: list[dict]) -> int:
    return sum(1 for pv in volumes if pv.get("status", {}).get("phase") == "Available")


def ensure_available(timeout: float = 180.0) -> int:
    """Make sure the pool has a free volume, recycling when it has none (namespaces of
    earlier tests may still be terminating: then wait); returns how many are free. A cluster
    whose volumes are not from the pool (a dynamic provisioner) returns at once."""
    deadline = time.monotonic() + timeout
    while True:
        pvs = _kubectl("get", "pv", "-o", "json")
        if pvs.returncode != 0:
            return 0
        pool = [pv for pv in json.loads(pvs.stdout)["items"]
                if POOL_ROOT in Path(pv.get("spec", {}).get("hostPath", {}).get("path", "/x")).parents]
        free = available(pool)
        if free or not pool or time.monotonic() > deadline:
            return free
        if not recycle():
            time.sleep(3)


if __name__ == "__main__":
    names = recycle()
    print(f"recycled {len(names)} released volume(s){': ' + ', '.join(names) if names else ''}")
