"""`inv test`: the test suite by tier, fastest first, stopping at the first failing tier.

A tier is a pytest marker expression over the markers tests/conftest.py derives from
the fixtures each test uses; every test is in exactly one tier.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import task

ROOT = Path(__file__).resolve().parents[2]

# name -> marker expression, fastest first.
TIERS = {
    "fast": "not (docker or cluster or postgres or browser or app or slow)",
    "app": "(postgres or browser or app or slow) and not (docker or cluster)",
    "docker": "docker and not cluster",
    "cluster": "cluster",
}
# The fast tier need not import what cannot hold a fast test: the directories whose tests
# all start the apps (tests/conftest.py APP_DIRS) and the drills' pytest plugins.
FAST_ONLY = [
    "--ignore=tests/drills", "--ignore=tests/frontend",
    "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:benchmark",
]
# Workers (pytest-xdist) per tier, at most one per usable core. The fast tier is hundreds
# of short CPU-bound tests; the app tier's tests mostly wait on their processes. Tests
# that must not run beside each other share an xdist_group (tests/conftest.py), which
# --dist loadgroup keeps on one worker, one after the other. The cluster tier's tests
# mostly wait on the cluster (pods starting, rollouts): two modules at a time, each
# module on one worker (its deployment made once), the drills together (one shared
# deployment). The docker tier untags shared images: serial. `-- -n 0` runs a tier serially.
WORKERS = {"fast": 2, "app": 2, "cluster": 2}
# The app tier's timing drills (the `timing` marker, tests/conftest.py TIMING_DRILLS) run
# after the rest, in a pytest of their own with no worker beside them: on one worker of
# two, the other worker's load failed the linear-time drill 4 times of 8 (it passed
# serially under the same outside load).
ALONE = "timing"
NO_TESTS_COLLECTED = 5  # pytest's exit status
# A directory for one JUnit XML report per tier (CI keeps them).
REPORTS_ENV = "TODO_TEST_REPORTS"
# Where a tier's bytecode goes when the shell turned caching off: without it every run
# (and every worker) compiles our ~200 modules and pytest rewrites every test module's
# asserts again, ~4 s of CPU per process; kept out of the source tree as asked.
BYTECODE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "todo-deploy" / "pycache"


def passthrough(argv: list[str]) -> list[str]:
    """What follows `--` on the command line: extra arguments for pytest."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers_argv(tier: str, cores: int) -> list[str]:
    """pytest-xdist's arguments for a tier: none where one worker (or core) is all there is."""
    workers = min(WORKERS.get(tier, 1), cores)
    return ["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else []


def pytest_argv(tier: str, extra: list[str], reports: str = "", cores: int | None = None) -> list[str]:
    """The pytest command line of one tier (the app tier's first part); the fast tier
    stops at its first failure."""
    expression = f"({TIERS[tier]}) and not {ALONE}" if tier == "app" else TIERS[tier]
    argv = [sys.executable, "-m", "pytest", "-m", expression]
    if tier == "fast":
        argv += ["-x", *FAST_ONLY]
    argv += workers_argv(tier, usable_cores() if cores is None else cores)
    if reports:
        argv.append(f"--junitxml={Path(reports) / f'junit-{tier}.xml'}")
    return argv + extra


def pytest_argvs(tier: str, extra: list[str], reports: str = "", cores: int | None = None) -> list[list[str]]:
    """Every pytest run of a tier, in order: the app tier's timing drills last, alone."""
    runs = [pytest_argv(tier, extra, reports, cores)]
    if tier == "app":
        alone = [sys.executable, "-m", "pytest", "-m", f"({TIERS[tier]}) and {ALONE}"]
        if reports:
            alone.append(f"--junitxml={Path(reports) / f'junit-{tier}-{ALONE}.xml'}")
        runs.append(alone + extra)
    return runs


def pytest_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A tier's environment: bytecode cached (under BYTECODE_CACHE where the shell said
    PYTHONDONTWRITEBYTECODE), everything else as given."""
    env = dict(environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", ""):
        env.setdefault("PYTHONPYCACHEPREFIX", str(BYTECODE_CACHE))
    return env


def chosen_tiers(fast: bool, app: bool, docker: bool, cluster: bool) -> list[str]:
    flags = {"fast": fast, "app": app, "docker": docker, "cluster": cluster}
    return [name for name in TIERS if flags[name]] or list(TIERS)


def tier_failed(code: int, extra: list[str]) -> bool:
    # A tier with nothing collected is a failure (a marker or path went wrong), unless
    # the extra arguments selected tests that live in other tiers.
    if code == NO_TESTS_COLLECTED:
        return not extra
    return code != 0


@task(help={
    "fast": "the fast tier: no Docker, cluster, PostgreSQL, browser or app processes (~30 s)",
    "app": "the app tier: PostgreSQL, the apps as processes, Chromium, the slow few",
    "docker": "the Docker tier: image builds",
    "cluster": "the cluster tier: deployments to the Kubernetes cluster",
    "all_": "every tier, fastest first (the default when no tier is named)",
})
def test(
    c: Context, fast: bool = False, app: bool = False, docker: bool = False,
    cluster: bool = False, all_: bool = False,
) -> None:
    """Run the test suite by tier, fastest first; stops at the first failing tier.
    Arguments after `--` go to pytest (`inv test --fast -- -k docs`). With
    TODO_TEST_REPORTS=<dir> each tier writes <dir>/junit-<tier>.xml."""
    tiers = list(TIERS) if all_ else chosen_tiers(fast, app, docker, cluster)
    extra = passthrough(sys.argv)
    reports = os.environ.get(REPORTS_ENV, "")
    if reports:
        Path(reports).mkdir(parents=True, exist_ok=True)
    for tier in tiers:
        print(f"=== inv test: the {tier} tier (-m {TIERS[tier]!r})", flush=True)
        for argv in pytest_argvs(tier, extra, reports):
            started = time.monotonic()  # each pytest of the tier timed on its own
            code = subprocess.run(argv, cwd=ROOT, env=pytest_env(os.environ), check=False).returncode
            print(f"=== inv test: the {tier} tier (-m {argv[4]!r}) took {time.monotonic() - started:.1f} s"
                  f" (exit {code})", flush=True)
            if tier_failed(code, extra):
                raise Exit(f"the {tier} tier failed (pytest exit {code})", code=code or 1)
