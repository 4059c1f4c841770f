"""Shared test plumbing.

Tests that need an outside resource (Docker, the cluster, PostgreSQL, a browser)
ask for it through `require(...)`. Locally a missing resource skips the test;
in CI (`TODO_REQUIRE_ALL=1`, set by `.ci/run`) it fails instead, and so does
every other skip (a hook below), so a skip can never be counted as a pass.

Tiers (`inv test --fast/--app/--docker/--cluster`): a test's tier markers are
derived here from the fixtures it uses, so they cannot disagree with what it needs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

import pytest
from _pytest.reports import CollectReport, TestReport

REQUIRE_ALL = os.environ.get("TODO_REQUIRE_ALL") == "1"
# A settings profile chosen in the shell (TODO_PROFILE, or `inv test --profile`) is the
# user's: the tests' settings roots are temp dirs without its .env.NAME.
os.environ.pop("TODO_PROFILE", None)

# The images a user's first run uses: the settings' defaults (public names, pulled
# when missing), unless the environment names others as it would for `inv`.
PYTHON_IMAGE = os.environ.get("PYTHON_BASE_IMAGE") or "python:3.11-slim"
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE") or "postgres:15"


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (CI) when a resource the test needs is missing."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required in CI (TODO_REQUIRE_ALL=1) but is not available")
    pytest.skip(f"{what} not available")


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False


def cluster_available() -> bool:
    if not shutil.which("kubectl"):
        return False
    result = subprocess.run(
        ["kubectl", "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    return result.returncode == 0


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL from TEST_DATABASE_URL (started by .ci/run locally)."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    parsed = urlparse(url) if url else None
    ok = bool(parsed and parsed.hostname and _tcp_open(parsed.hostname, parsed.port or 5432))
    require(ok, f"PostgreSQL at TEST_DATABASE_URL ({'set' if url else 'unset'})")
    return url


@pytest.fixture(scope="session")
def docker_engine() -> None:
    require(docker_available(), "a Docker engine")


@pytest.fixture(scope="session")
def kube_cluster() -> None:
    require(cluster_available(), "a Kubernetes cluster (kubectl context)")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    require(bool(path) and bool(shutil.which("chromedriver")), "Chromium and chromedriver")
    return path


# ---- under TODO_REQUIRE_ALL=1 a skip is a failure -------------------------------------------


def _skip_reason(report: TestReport | CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(report: TestReport | CollectReport) -> None:
    what = "expected failure (xfail)" if hasattr(report, "wasxfail") else "skipped"
    why = getattr(report, "wasxfail", "") or _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = f"{what} under TODO_REQUIRE_ALL=1, where any skip fails the run: {why}"
    if hasattr(report, "wasxfail"):
        del report.wasxfail


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: TestReport = outcome.get_result()
    if REQUIRE_ALL and report.skipped:
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    # A module-level skip (pytest.importorskip, allow_module_level) skips at collection.
    outcome = yield
    report: CollectReport = outcome.get_result()
    if REQUIRE_ALL and report.skipped:
        _fail_skip(report)


# ---- tiers: markers from the fixtures a test uses -------------------------------------------

FIXTURE_MARKERS = {
    "docker_engine": "docker",
    "kube_cluster": "cluster",
    "postgres_url": "postgres",
    "pg_database": "postgres",
    "chromium_path": "browser",
}
# Where the apps run as processes (`python -m todo_api` / `todo_web`): the drills, and the
# frontend's tests (its fixtures start it, and the backend, on loopback).
APP_DIRS = ("tests/drills/", "tests/frontend/")
# Fixtures elsewhere that start the apps, by the node id they are defined under and name
# (a name such as `backend` is a plain parameter in other modules).
APP_FIXTURES = {("tests/unit/test_verify_units.py", "real_apps")}
# Parametrized over database backends, the PostgreSQL case asks for its database inside
# the test (request.getfixturevalue), out of sight of the fixture closure.
POSTGRES_PARAM = "postgres"
# The few tests that would more than double the fast tier's time (measured with
# --durations; each takes seconds): whole-tool runs, processes started and stopped, waits
# on real deadlines. They run in the app tier. Node ids without parameters.
SLOW = {
    "tests/backend/test_ops.py::test_dev_command_generates_secret",
    "tests/backend/test_ops.py::test_sigterm_drains_then_exits_cleanly_and_logs_are_safe",
    "tests/backend/test_chat.py::test_chats_in_flight_are_limited_per_user_and_in_all",
    "tests/backend/test_chat.py::test_openai_provider_end_to_end",
    "tests/backend/test_chat.py::test_a_slow_agent_holds_no_database_connection",
    "tests/unit/test_parity.py::test_names_fit_and_agree_for_every_release_name",
    "tests/unit/test_dev_task.py::test_inv_dev_serves_both_and_a_signal_stops_both",
    "tests/unit/test_lint.py::test_stage_passes_on_the_repo",
    "tests/unit/test_lint.py::test_missing_dockerfile_fails",
    "tests/unit/test_lint.py::test_stage_fails_on_a_seeded_bad_manifest",
    "tests/unit/test_lint.py::test_stage_fails_on_a_bad_chart",
    "tests/unit/test_cli_parsing.py::test_inv_lint_runs_through_the_cli_and_records_its_gate",
    "tests/unit/test_tasks_help.py::test_inv_lets_python_cache_the_workflows_bytecode",
    "tests/unit/test_helm_cli.py::test_cli_engine_full_cycle_against_each_major",
    "tests/unit/test_aiops_adapters.py::test_kubectl_ai_timeout_is_a_timeout_run",
    "tests/unit/test_aiops_adapters.py::test_gordon_waiting_in_its_ui_times_out_with_a_plain_reason",
    "tests/unit/test_mcp_configs.py::test_inv_mcp_print_config_prints_it",
    "tests/backend/test_ops.py::test_bad_configuration_exits_2",
    "tests/backend/test_chat.py::test_llm_errors_give_502_and_store_no_turn",
    # `inv` run as a process once per parameter (0.3-0.6 s each, dozens of them)
    "tests/unit/test_config.py::test_bad_setting_stops_the_task_with_exit_2",
    "tests/unit/test_config.py::test_secrets_never_appear_in_output",
    "tests/unit/test_cli_parsing.py::test_dash_h_is_help_on_every_task",
    "tests/unit/test_cli_parsing.py::test_no_kubeconfig_is_one_line_and_exit_1_never_a_traceback",
    "tests/unit/test_helm_rollback.py::test_no_cluster_is_one_line_and_exit_1",
    # the lint stage on the cloud profile (helm lint, schemas, Pod Security: ~3.5 s), and
    # `inv` run as a process with --profile / TODO_PROFILE
    "tests/unit/test_profiles.py::test_the_cloud_example_profile_loads_with_hpa_and_pdb_and_lints_clean",
    "tests/unit/test_profiles.py::test_inv_config_with_the_flag_and_with_the_variable_shows_the_profile_file",
    "tests/unit/test_profiles.py::test_inv_deploy_and_up_refuse_the_wrong_cluster_before_anything_runs",
    # pytest run with two xdist workers (~3-6 s)
    "tests/unit/test_test_tiers.py::test_the_timing_drills_run_on_one_worker_one_after_the_other",
    # the access probe retries a refused NodePort for 3 s (kube-proxy's sync)
    "tests/unit/test_docs.py::test_stage_writes_report_svg_and_json",
    "tests/unit/test_docs.py::test_stage_without_dot_warns_and_keeps_mermaid",
    "tests/unit/test_docs.py::test_stage_fails_and_scrubs_when_a_secret_leaks",
    # What a fresh interpreter has imported is what these assert: a child process is the test
    "tests/backend/test_mcp.py::test_starting_the_server_leaves_the_mcp_sdk_and_alembic_out",
    "tests/unit/test_kube_transport.py::test_a_direct_connection_does_not_import_the_kubernetes_sdk",
    "tests/unit/test_fast_deploy_units.py::test_quantity_is_the_sdks_parser_without_the_sdk_import",
    "tests/unit/test_tasks_help.py::test_tasks_py_leaves_the_collector_on_and_freezes_it_out_at_exit",
    "tests/unit/test_tasks_help.py::test_every_task_has_a_docstring_and_every_flag_help",
    # Real signals in a child process, so that a deadlock cannot hang the suite (~1 s each)
    "tests/backend/test_log_batching.py::test_a_record_logged_by_a_signal_handler_in_the_middle_of_emit_never_deadlocks",
    # `inv` run as a process: its exit status and output are the test (~0.5-1 s each)
    "tests/unit/test_config.py::test_every_problem_is_reported_at_once",
    "tests/unit/test_config.py::test_secrets_set_in_dotenv_are_masked_too",
    "tests/unit/test_config.py::test_sources_are_reported_right",
    "tests/unit/test_config.py::test_an_unknown_dotenv_key_is_reported_with_the_closest_known_one",
    "tests/unit/test_config.py::test_credentials_inside_a_url_setting_are_masked_and_scrubbed",
    "tests/unit/test_cli_parsing.py::test_an_unknown_playbook_lists_the_playbooks",
    "tests/unit/test_tasks_help.py::test_inv_list_is_fast_and_shows_the_stages",
    "tests/unit/test_dev_task.py::test_a_port_in_use_is_reported_up_front_by_number",
    # pytest run as a process: TODO_REQUIRE_ALL is read when tests/conftest.py is imported
    "tests/unit/test_test_tiers.py::test_a_skip_fails_the_run_under_require_all_and_says_why",
    "tests/unit/test_test_tiers.py::test_without_require_all_the_same_skips_pass",
    "tests/unit/test_test_tiers.py::test_tier_markers_follow_the_fixtures",
    "tests/unit/test_test_tiers.py::test_the_timing_drills_are_marked_timing_and_grouped",
}
TIER_MARKERS = ("docker", "cluster", "postgres", "browser", "app", "slow")

# The drills that assert a latency or a memory (RSS) bound. Under pytest-xdist
# (`inv test` runs `--dist loadgroup`) one xdist_group keeps them on one worker, one
# after the other, so that no two of them share the two cores.
TIMING_GROUP = "timing"
TIMING_DRILLS = frozenset({
    "tests/drills/test_agent_linear_time.py",
    "tests/drills/test_connection_slots.py",
    "tests/drills/test_database_restart.py",
    "tests/drills/test_frontend_hostile.py",
    "tests/drills/test_hostile_input.py",
    "tests/drills/test_limits_and_abuse.py",
    "tests/drills/test_shutdown_under_traffic.py",
    "tests/drills/test_slow_model.py",
    "tests/drills/test_user_quotas_and_bounds.py",
})


SHARED_RELEASE_GROUP = "shared-release"


def cluster_group(nodeid: str, fixtures: Iterable[str]) -> str:
    """The cluster tier's xdist group of a test: one group for the tests on the shared
    release (tests/shared_release.py: made once, on one worker), else its module (the
    module's own deployments made once, on one worker)."""
    return SHARED_RELEASE_GROUP if SHARED_FIXTURE in fixtures else nodeid.split("::")[0]


def _fixture_origins(item: pytest.Item) -> set[tuple[str, str]]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {(defs[-1].baseid, name) for name, defs in info.name2fixturedefs.items() if defs}


def derived_markers(item: pytest.Item) -> set[str]:
    """The tier markers a test's fixtures, place and parameters call for."""
    names = set(getattr(item, "fixturenames", ()))
    found = {marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in names}
    callspec = getattr(item, "callspec", None)
    if callspec is not None and POSTGRES_PARAM in callspec.params.values():
        found.add("postgres")
    if item.nodeid.startswith(APP_DIRS) or _fixture_origins(item) & APP_FIXTURES:
        found.add("app")
    if item.nodeid.split("[")[0] in SLOW:
        found.add("slow")
    return found


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    collected = {item.nodeid.split("[")[0] for item in items}
    if {nodeid.split("::")[0] for nodeid in collected} >= {n.split("::")[0] for n in SLOW}:
        # A renamed slow test would silently land in the fast tier again.
        missing = sorted(SLOW - collected)
        if missing:
            raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {missing}")
    for item in items:
        present = {m.name for m in item.iter_markers()}
        for marker in sorted(derived_markers(item) - present):
            item.add_marker(marker)
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(pytest.mark.xdist_group(cluster_group(item.nodeid, item.fixturenames)))
        elif item.nodeid.split("::")[0] in TIMING_DRILLS:
            item.add_marker(pytest.mark.xdist_group(TIMING_GROUP))
            item.add_marker(TIMING_GROUP)  # `inv test --app` runs these alone, after the rest


# The cluster tier's shared deployment, a fixture every test module can ask for.
from tests.shared_release import FIXTURE as SHARED_FIXTURE
from tests.shared_release import full_inv_up, shared_release  # noqa: F401
