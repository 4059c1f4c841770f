"""`inv bench <name>`: the benchmarks in bench/ (not part of the test run)."""

from __future__ import annotations

import subprocess
import sys

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import task
from todo_deploy.config import PROJECT_ROOT

NAMES = ("pipeline", "app", "data", "footprint", "sizes", "all", "report")


@task(
    help={
        "name": "pipeline | app | data | footprint | sizes | all | report (report only "
        "regenerates bench/RESULTS.md from bench/results/*.json).",
        "no_wait": "Start at once instead of waiting for the machine's load average to settle.",
    }
)
def bench(c: Context, name: str = "all", no_wait: bool = False) -> None:
    """Measure and write bench/results/<name>.json, then regenerate bench/RESULTS.md + plots.

    Deploys into scratch namespaces on the current cluster (CLUSTER_PROVIDER=existing) and
    removes them afterwards. `inv bench all` reproduces every figure in one command.
    """
    if name not in NAMES:
        raise Exit(f"unknown benchmark {name!r}: choose from {', '.join(NAMES)}", code=2)
    argv = [sys.executable, "-m", "bench", name] + (["--no-wait"] if no_wait else [])
    result = subprocess.run(argv, cwd=PROJECT_ROOT, check=False)
    if result.returncode != 0:
        raise Exit(f"benchmark {name} failed (exit {result.returncode})", code=result.returncode)
