"""todo_deploy.helm.sdk_internals is the one module that reaches into helm-python-sdk's
internals. These tests fail loudly when an upgrade of the package changes what
it relies on, or makes it unnecessary (the public API gained the options)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import helm_python
import pytest

from todo_deploy.helm import sdk_internals as helm_sdk

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def probe_chart(tmp_path: Path) -> Path:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\ndata:\n"
        '  kube: "{{ .Capabilities.KubeVersion.Version }}"\n'
        '  policy: "{{ .Capabilities.APIVersions.Has "example.test/v9" }}"\n'
    )
    return chart


def test_the_pinned_version_is_the_one_the_adapter_was_written_for() -> None:
    requirements = (ROOT / "requirements.txt").read_text()
    pinned = re.search(r"^helm-python-sdk==(\S+)$", requirements, re.MULTILINE)
    assert pinned and pinned[1] == helm_sdk.KNOWN_VERSION == helm_python.__version__, (
        "helm-python-sdk changed: re-read its chart.py/config.py/_native.py, update "
        "todo_deploy/helm/sdk_internals.py (or drop it if the public API now has what it adds), then "
        "KNOWN_VERSION"
    )


def test_the_internals_used_still_exist() -> None:
    from helm_python import _native

    assert callable(_native.call_string)
    assert _native.HANDLE(0).value == 0
    for cls in (helm_python.Chart, helm_python.Config):
        assert callable(getattr(cls, "_raw", None)), f"{cls.__name__}._raw is gone"


def test_the_public_api_still_lacks_what_the_adapter_adds() -> None:
    """When this fails, the adapter is no longer needed: use the public method."""
    render = inspect.signature(helm_python.Chart.render).parameters
    assert "kube_version" not in render and "api_versions" not in render
    for method in (helm_python.Config.install, helm_python.Config.upgrade):
        assert "wait_for_jobs" not in inspect.signature(method).parameters


def test_render_sets_kube_version_and_api_versions(probe_chart: Path) -> None:
    with helm_python.Chart.load(probe_chart) as chart:
        plain = helm_sdk.render(chart, {}, name="r", namespace="ns")
        set_ = helm_sdk.render(chart, {}, name="r", namespace="ns", kube_version="v1.21.7",
                               api_versions=["example.test/v9"])
    assert 'policy: "false"' in plain["probe/templates/cm.yaml"]
    assert 'kube: "v1.21.7"' in set_["probe/templates/cm.yaml"]
    assert 'policy: "true"' in set_["probe/templates/cm.yaml"]


def test_release_options_are_accepted_by_the_library(probe_chart: Path) -> None:
    """The library decodes its options strictly (an unknown key is an error), so an
    accepted `wait_for_jobs` is one it knows. A client-side dry run needs no cluster."""
    options = {"namespace": "ns", "timeout_seconds": 5, "wait": "watcher", "wait_for_jobs": True,
               "rollback_on_failure": True, "dry_run": "client"}
    with helm_python.Config(kubeconfig_content=KUBECONFIG, storage_driver="memory",
                            namespace="ns") as config, helm_python.Chart.load(probe_chart) as chart:
        summary = helm_sdk.install_or_upgrade(config, chart, "r", {}, options, upgrade=False)
        assert (summary["name"], summary["revision"]) == ("r", 1)
        with pytest.raises(helm_python.HelmInvalidArgError, match='unknown field "no_such_option"'):
            helm_sdk.install_or_upgrade(config, chart, "r", {}, {**options, "no_such_option": 1},
                                        upgrade=False)
        # An upgrade decodes the same options before it needs the (absent) cluster.
        with pytest.raises(helm_python.HelmKubeError, match="cluster unreachable"):
            helm_sdk.install_or_upgrade(config, chart, "r", {}, options, upgrade=True)


def test_no_other_module_touches_the_internals() -> None:
    offenders = [
        str(path.relative_to(ROOT)) for path in (ROOT / "todo_deploy").rglob("*.py")
        if path.name != "sdk_internals.py"
        and re.search(r"_native|\._raw\(|_context_arg", path.read_text())
    ]
    assert offenders == []
