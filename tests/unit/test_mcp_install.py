"""`inv aiops install-agent` against a fake API serving kagent's CRDs (the fixtures), and
`inv aiops` choosing that agent once it is there."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.kube import KubeError
from todo_deploy.mcp import kagent
from todo_deploy.stages.aiops.adapters import KAGENT_AGENT, make_tools
from todo_deploy.tools.commands import Runner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kagent"


@cache
def fixture_crds() -> dict[str, dict[str, Any]]:
    found = {}
    for path in FIXTURES.glob("kagent.dev_*.yaml"):
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        found[crd["metadata"]["name"]] = crd
    return found


class FakeKube:
    """The few API calls install() makes, over in-memory objects."""

    def __init__(self, crds: dict[str, dict[str, Any]], namespaces: set[str]) -> None:
        self.crds, self.namespaces = crds, namespaces
        self.applied: list[dict[str, Any]] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        name = path.removeprefix(kagent.CRD_PATH)
        if method == "GET" and name in self.crds:
            return self.crds[name]
        raise KubeError(404, f"{path} not found")

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Any:
        if kind == "Namespace":
            return {"metadata": {"name": name}} if name in self.namespaces else None
        return next((o for o in self.applied if o["kind"] == kind
                     and o["metadata"]["name"] == name
                     and o["metadata"].get("namespace") == namespace), None)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return obj


def loaded_in(root: Path) -> LoadedSettings:
    return load_settings(root, {"CLUSTER_PROVIDER": "existing", "NAMESPACE": "shop",
                                "RELEASE_NAME": "todo-a", "KAGENT_NAMESPACE": "kagent"})


def test_applies_rbac_server_and_agent_in_order(tmp_path: Path) -> None:
    settings = loaded_in(tmp_path).settings
    kube = FakeKube(dict(fixture_crds()), {"shop", "kagent"})
    done = kagent.install(settings, "http://10.0.0.5:8765/mcp", kube)  # type: ignore[arg-type]
    assert done.ok, done.explain()
    assert [o["kind"] for o in kube.applied] == [
        "ServiceAccount", "Role", "RoleBinding", "RemoteMCPServer", "Agent"]
    assert "kagent invoke -a todo-a-agent -n kagent" in done.explain()
    assert kagent.installed_agent(settings, kube) == "todo-a-agent"  # type: ignore[arg-type]


def test_dry_run_validates_and_applies_nothing(tmp_path: Path) -> None:
    kube = FakeKube(dict(fixture_crds()), {"shop", "kagent"})
    done = kagent.install(loaded_in(tmp_path).settings, "http://x:1/mcp", kube,  # type: ignore[arg-type]
                          dry_run=True)
    assert done.ok and kube.applied == [] and "nothing applied" in done.explain()


def test_missing_crds_and_namespaces_are_explained_and_nothing_applied(tmp_path: Path) -> None:
    kube = FakeKube({}, set())
    done = kagent.install(loaded_in(tmp_path).settings, "http://x:1/mcp", kube)  # type: ignore[arg-type]
    assert not done.ok and kube.applied == []
    text = done.explain()
    assert "agents.kagent.dev" in text and "remotemcpservers.kagent.dev" in text
    assert "inv aiops --install-kagent" in text
    assert "kagent's namespace kagent does not exist" in text
    assert "the app's namespace shop does not exist" in text


def test_a_cluster_whose_crd_does_not_serve_v1alpha2_is_refused(tmp_path: Path) -> None:
    crds = copy.deepcopy(fixture_crds())
    for version in crds["agents.kagent.dev"]["spec"]["versions"]:
        version["served"] = version["name"] != "v1alpha2"
    kube = FakeKube(crds, {"shop", "kagent"})
    done = kagent.install(loaded_in(tmp_path).settings, "http://x:1/mcp", kube)  # type: ignore[arg-type]
    assert not done.ok and kube.applied == []
    assert "does not serve v1alpha2 (serves v1alpha1): upgrade kagent" in done.explain()


def test_a_stricter_cluster_schema_stops_the_install(tmp_path: Path) -> None:
    crds = copy.deepcopy(fixture_crds())
    for version in crds["remotemcpservers.kagent.dev"]["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].pop(
            "sseReadTimeout")
    kube = FakeKube(crds, {"shop", "kagent"})
    done = kagent.install(loaded_in(tmp_path).settings, "http://x:1/mcp", kube)  # type: ignore[arg-type]
    assert not done.ok and kube.applied == []
    assert "'sseReadTimeout' was unexpected" in done.explain()


def test_inv_aiops_asks_the_apps_agent_once_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from todo_deploy import kube as kube_module
    from todo_deploy.cli.aiops import agent_to_ask

    loaded = loaded_in(tmp_path)
    fake = FakeKube(dict(fixture_crds()), {"shop", "kagent"})
    monkeypatch.setattr(kube_module, "Kube", lambda context="": fake)
    assert agent_to_ask(loaded, "health") == KAGENT_AGENT  # not installed yet
    kagent.install(loaded.settings, "http://x:1/mcp", fake)  # type: ignore[arg-type]
    assert agent_to_ask(loaded, "health") == "todo-a-agent"
    tools = make_tools(Runner(log=lambda _: None), loaded.settings, {},
                       kagent_agent="todo-a-agent")
    assert tools["kagent"].command("why?")[:4] == [  # type: ignore[attr-defined]
        "kagent", "invoke", "-a", "todo-a-agent"]
    default = make_tools(Runner(log=lambda _: None), loaded.settings, {})
    assert default["kagent"].command("why?")[3] == KAGENT_AGENT  # type: ignore[attr-defined]
