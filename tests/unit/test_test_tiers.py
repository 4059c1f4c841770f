"""The suite's own plumbing: a skip fails under TODO_REQUIRE_ALL=1, tier markers follow
the fixtures a test uses, and `inv test` runs every tier once, failing on an empty one."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from tests.conftest import APP_DIRS, TIER_MARKERS, TIMING_DRILLS
from todo_deploy.cli import test as test_task

ROOT = Path(__file__).resolve().parents[2]

# The hooks under test, and nothing else of tests/conftest.py (its session hooks
# recycle the cluster's volumes).
HOOKS_CONFTEST = """
from tests.conftest import (  # noqa: F401
    chromium_path, docker_engine, kube_cluster, postgres_url,
    pytest_collection_modifyitems, pytest_make_collect_report, pytest_runtest_makereport,
)
"""

SKIPPING_TESTS = {
    "test_skips.py": """
import pytest

def test_passes():
    assert True

def test_skips_in_its_body():
    pytest.skip("no widget here")

@pytest.mark.skipif(True, reason="not on this platform")
def test_skipped_by_mark():
    pass

@pytest.mark.xfail(reason="a known bug")
def test_expected_to_fail():
    assert False
""",
    "test_module_skip.py": """
import pytest
pytest.importorskip("a_module_that_is_not_installed")

def test_never_collected():
    pass
""",
}

FIXTURE_TESTS = {
    "conftest.py": HOOKS_CONFTEST + """
def pytest_collection_finish(session):
    for item in session.items:
        print("markers", item.nodeid.split("::")[1], *sorted(m.name for m in item.iter_markers()))
""",
    "test_fixtures.py": """
import pytest

def test_plain():
    pass

def test_docker(docker_engine):
    pass

def test_cluster(kube_cluster):
    pass

def test_browser(chromium_path):
    pass

def test_postgres(postgres_url):
    pass

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_per_backend(backend):
    pass
""",
}


def run_pytest(tmp_path: Path, files: dict[str, str], *args: str, require_all: bool) -> str:
    for name, text in {"conftest.py": HOOKS_CONFTEST, **files}.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TODO_REQUIRE_ALL", "PYTEST_ADDOPTS", "TEST_DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only our hooks: seconds less per run
    if require_all:
        env["TODO_REQUIRE_ALL"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", os.devnull,
         "--rootdir", str(tmp_path), "-rA", *args, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def test_a_skip_fails_the_run_under_require_all_and_says_why(tmp_path: Path) -> None:
    # Without the flag the module skipped at collection would stop the session (also a failure).
    out = run_pytest(tmp_path, SKIPPING_TESTS, "--continue-on-collection-errors", require_all=True)
    assert out.startswith("exit 1\n"), out
    assert "PASSED test_skips.py::test_passes" in out
    for name, reason in [("test_skips_in_its_body", "no widget here"),
                         ("test_skipped_by_mark", "not on this platform"),
                         ("test_expected_to_fail", "a known bug")]:  # fmt: skip
        line = next((ln for ln in out.splitlines() if f"test_skips.py::{name}" in ln
                     and ln.startswith(("FAILED", "ERROR"))), "")  # fmt: skip
        assert line, out
        assert "TODO_REQUIRE_ALL=1" in out and reason in out
    assert "ERROR test_module_skip.py" in out and "a_module_that_is_not_installed" in out
    assert "skipped" not in out.splitlines()[-1] and "xfailed" not in out.splitlines()[-1]


def test_without_require_all_the_same_skips_pass(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, SKIPPING_TESTS, require_all=False)
    assert out.startswith("exit 0\n"), out
    assert "1 passed, 3 skipped, 1 xfailed" in out.splitlines()[-1]


def test_tier_markers_follow_the_fixtures(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, FIXTURE_TESTS, "--collect-only", "-q", require_all=False)
    markers = {ln.split()[1]: set(ln.split()[2:]) - {"parametrize"}
               for ln in out.splitlines() if ln.startswith("markers ")}  # fmt: skip
    assert markers == {
        "test_plain": set(),
        "test_docker": {"docker"},
        "test_cluster": {"cluster", "xdist_group"},  # its module's group (cluster_group)
        "test_browser": {"browser"},
        "test_postgres": {"postgres"},
        "test_per_backend[sqlite]": set(),
        "test_per_backend[postgres]": {"postgres"},
    }, out


def test_every_combination_of_markers_is_in_exactly_one_tier() -> None:
    tiers = {name: Expression.compile(expr) for name, expr in test_task.TIERS.items()}
    for size in range(len(TIER_MARKERS) + 1):
        for markers in itertools.combinations(TIER_MARKERS, size):
            matching = [name for name, expr in tiers.items()
                        if expr.evaluate(set(markers).__contains__)]  # fmt: skip
            assert len(matching) == 1, (markers, matching)
    assert list(test_task.TIERS) == ["fast", "app", "docker", "cluster"]  # fastest first


def test_inv_test_arguments() -> None:
    assert test_task.passthrough(["inv", "test", "--fast", "--", "-k", "docs"]) == ["-k", "docs"]
    assert test_task.passthrough(["inv", "test"]) == []
    assert test_task.chosen_tiers(False, False, False, False) == list(test_task.TIERS)
    assert test_task.chosen_tiers(False, True, False, True) == ["app", "cluster"]
    fast = test_task.pytest_argv("fast", ["-k", "x"], "/tmp/r", cores=2)
    assert fast[1:] == ["-m", "pytest", "-m", test_task.TIERS["fast"], "-x", *test_task.FAST_ONLY,
                        "-n", "2", "--dist", "loadgroup", "--junitxml=/tmp/r/junit-fast.xml",
                        "-k", "x"]  # fmt: skip
    # It leaves out only directories whose every test is in the app tier.
    ignored = {a.split("=", 1)[1].rstrip("/") for a in test_task.FAST_ONLY if a.startswith("--ignore=")}
    assert ignored == {d.rstrip("/") for d in APP_DIRS}
    assert "-x" not in test_task.pytest_argv("cluster", [])


def workers(argv: list[str]) -> tuple[str, str] | None:
    if "-n" not in argv:
        return None
    return argv[argv.index("-n") + 1], argv[argv.index("--dist") + 1]


@pytest.mark.parametrize(("cores", "expected"), [
    (1, {"fast": None, "app": None, "docker": None, "cluster": None}),
    (2, {"fast": ("2", "loadgroup"), "app": ("2", "loadgroup"), "docker": None,
         "cluster": ("2", "loadgroup")}),
    (16, {"fast": ("2", "loadgroup"), "app": ("2", "loadgroup"), "docker": None,
          "cluster": ("2", "loadgroup")}),
])  # fmt: skip
def test_fast_app_and_cluster_tiers_run_on_two_workers_docker_serially(
    cores: int, expected: dict[str, tuple[str, str] | None]
) -> None:
    """Two workers at most (the timing drills' group assumes one other worker beside
    it), never more than the cores; one engine and one cluster: those tiers serial."""
    assert {tier: workers(test_task.pytest_argv(tier, [], cores=cores)) for tier in test_task.TIERS} == expected
    # What follows `--` comes last, so `-- -n 0` wins over the tier's workers.
    assert test_task.pytest_argv("fast", ["-n", "0"], cores=2)[-2:] == ["-n", "0"]


def test_the_app_tiers_timing_drills_run_after_the_rest_alone() -> None:
    """Beside another worker the linear-time drill failed 4 times of 8: the app tier is
    two runs, the rest on two workers, then the timing drills serially."""
    app = test_task.TIERS["app"]
    rest, alone = test_task.pytest_argvs("app", ["-k", "x"], "/tmp/r", cores=2)
    assert rest[1:] == ["-m", "pytest", "-m", f"({app}) and not timing", "-n", "2", "--dist", "loadgroup",
                        "--junitxml=/tmp/r/junit-app.xml", "-k", "x"]  # fmt: skip
    assert alone[1:] == ["-m", "pytest", "-m", f"({app}) and timing",
                         "--junitxml=/tmp/r/junit-app-timing.xml", "-k", "x"]  # fmt: skip
    for tier in ("fast", "docker", "cluster"):
        assert test_task.pytest_argvs(tier, [], cores=2) == [test_task.pytest_argv(tier, [], cores=2)]


TIMING_MARKS = {
    "conftest.py": HOOKS_CONFTEST + """
def pytest_collection_finish(session):
    for item in session.items:
        print("markers", item.nodeid, *sorted(m.name for m in item.iter_markers()))
""",
    **{f"tests/drills/{name}.py": "def test_a():\n    pass\n"
       for name in ("test_slow_model", "test_bad_input_backend")},
}


def test_the_timing_drills_are_marked_timing_and_grouped(tmp_path: Path) -> None:
    (tmp_path / "tests" / "drills").mkdir(parents=True)
    out = run_pytest(tmp_path, TIMING_MARKS, "--collect-only", "-q", "-p", "no:xdist", require_all=False)
    markers = {ln.split()[1]: ln.split()[2:] for ln in out.splitlines() if ln.startswith("markers ")}
    assert "tests/drills/test_slow_model.py" in TIMING_DRILLS, sorted(TIMING_DRILLS)
    assert markers == {"tests/drills/test_slow_model.py::test_a": ["app", "timing", "xdist_group"],
                       "tests/drills/test_bad_input_backend.py::test_a": ["app"]}, out  # fmt: skip


def test_a_tier_caches_bytecode_outside_the_tree_when_the_shell_turned_it_off() -> None:
    """With PYTHONDONTWRITEBYTECODE every worker compiled our modules and rewrote every
    test module's asserts again (~4 s of CPU each)."""
    env = test_task.pytest_env({"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/home/x"})
    assert env == {"PYTHONPYCACHEPREFIX": str(test_task.BYTECODE_CACHE), "HOME": "/home/x"}
    assert not test_task.BYTECODE_CACHE.is_relative_to(ROOT)
    mine = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/elsewhere"}
    assert test_task.pytest_env(mine) == {"PYTHONPYCACHEPREFIX": "/elsewhere"}
    assert test_task.pytest_env({"HOME": "/home/x"}) == {"HOME": "/home/x"}  # caching on: as it was


GROUP_TESTS = {
    "conftest.py": HOOKS_CONFTEST + """
import os, time

def pytest_runtest_call(item):
    started = time.monotonic()
    time.sleep(0.3)
    with open(os.environ["RUNS_LOG"], "a") as log:
        log.write(f"{item.nodeid.split('@')[0]} {os.environ.get('PYTEST_XDIST_WORKER')} {started} {time.monotonic()}\\n")
""",
    **{f"tests/drills/{name}.py": "def test_a():\n    pass\n\ndef test_b():\n    pass\n"
       for name in ("test_slow_model", "test_limits_and_abuse", "test_bad_input_backend")},
}


def test_the_timing_drills_run_on_one_worker_one_after_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `--dist loadgroup` the drills that assert a latency or RSS bound share one
    worker; the others (test_bad_input_backend here) are spread as usual."""
    (tmp_path / "tests" / "drills").mkdir(parents=True)
    log = tmp_path / "runs.log"
    monkeypatch.setenv("RUNS_LOG", str(log))
    out = run_pytest(tmp_path, GROUP_TESTS, "-p", "xdist.plugin", "-n", "2", "--dist", "loadgroup",
                     require_all=False)
    assert out.startswith("exit 0\n"), out
    runs = [line.split() for line in log.read_text().splitlines()]
    assert len(runs) == 6 and {worker for _, worker, _, _ in runs} == {"gw0", "gw1"}, runs
    timing = sorted((float(start), float(end), worker) for nodeid, worker, start, end in runs
                    if nodeid.split("::")[0] in TIMING_DRILLS)  # fmt: skip
    assert len(timing) == 4 and len({worker for _, _, worker in timing}) == 1, runs
    assert all(before[1] <= after[0] for before, after in itertools.pairwise(timing)), runs


BOUND_ASSERT = re.compile(r"^\s*assert\b.*\b(peak_rss_mib|rss_mib|peak|elapsed|seconds|took|longest|ratio|probes)\b")


def test_every_drill_that_asserts_a_time_or_memory_bound_is_in_the_timing_group() -> None:
    bound = {str(path.relative_to(ROOT)) for path in sorted((ROOT / "tests" / "drills").glob("test_*.py"))
             if any(BOUND_ASSERT.match(line) for line in path.read_text().splitlines())}  # fmt: skip
    assert bound and bound <= TIMING_DRILLS, sorted(bound - TIMING_DRILLS)
    assert all((ROOT / path).is_file() for path in TIMING_DRILLS), sorted(TIMING_DRILLS)


@pytest.mark.parametrize(("code", "extra", "failed"), [
    (0, [], False), (1, [], True), (5, [], True), (5, ["-k", "docs"], False), (2, ["-k", "x"], True),
])  # fmt: skip
def test_a_tier_that_collects_nothing_fails_unless_a_selection_was_given(
    code: int, extra: list[str], failed: bool
) -> None:
    assert test_task.tier_failed(code, extra) is failed


def _run_readme(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    """.ci/run's own readme_command/run_readme/fail, on a README whose quickstart is `command`."""
    script = (ROOT / ".ci" / "run").read_text()
    lines = [ln for ln in script.splitlines() if ln.startswith("fail() ")]
    functions = "\n".join([*lines, *(
        script[script.index(f"{name}() {{"):].split("\n}\n", 1)[0] + "\n}"
        for name in ("readme_command", "run_readme"))])
    (tmp_path / "README.md").write_text(f"# x\n\n## Quickstart\n\n```bash\n{command}\n```\n")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", f"{functions}\nrun_readme 1 '| cat'\necho went-on"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)


def test_ci_runs_the_readme_commands_and_fails_when_any_part_fails(tmp_path: Path) -> None:
    """Under `set -e` a failure left of `&&` is ignored: CI went on without running the
    tests when their install failed. Now each README command is read from the README and
    run whole in its own shell whose status is checked; ruff runs before anything else."""
    script = (ROOT / ".ci" / "run").read_text()
    code = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert not [ln for ln in code if "&&" in ln], "no `a && b` whose left side set -e would ignore"
    assert code.index("ruff check .") < next(i for i, ln in enumerate(code) if "apt-get" in ln)
    assert 'run_readme 1 "2>&1 | tee /tmp/inv-up.log"' in code and 'run_readme 2 ""' in code
    # (the command is echoed as written: 'RIGHT""SIDE'; only running it prints RIGHTSIDE)
    failed = _run_readme(tmp_path, 'false && echo RIGHT""SIDE')
    assert failed.returncode != 0 and "went-on" not in failed.stdout, failed.stdout
    assert "RIGHTSIDE" not in failed.stdout and "CI failed" in failed.stdout
    passed = _run_readme(tmp_path, 'true && echo RIGHT""SIDE')
    assert passed.returncode == 0 and "RIGHTSIDE" in passed.stdout and "went-on" in passed.stdout
    syntax = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True,
                            text=True, timeout=30, check=False)  # fmt: skip
    assert syntax.returncode == 0, syntax.stderr


@pytest.mark.parametrize(("nodeid", "fixtures", "group"), [
    ("tests/drills/test_pod_loss.py::test_x", ["shared_release"], "shared-release"),
    ("tests/integration/test_verify.py::test_z", ["deployed", "shared_release"], "shared-release"),
    ("tests/integration/test_deploy_raw.py::test_y[a]", ["scratch"], "tests/integration/test_deploy_raw.py"),
    ("tests/unit/test_status_cluster.py::test_w", [], "tests/unit/test_status_cluster.py"),
])  # fmt: skip
def test_a_cluster_test_runs_on_the_shared_release_s_worker_or_with_its_module(
    nodeid: str, fixtures: list[str], group: str
) -> None:
    from tests.conftest import cluster_group

    assert cluster_group(nodeid, fixtures) == group
