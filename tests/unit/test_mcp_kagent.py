"""The kagent manifests `inv mcp --print-config kagent` prints, validated strictly:
custom resources against kagent's own CRDs (tests/fixtures/kagent/, see SOURCE.md),
the RBAC objects against Kubernetes' schemas; unknown fields are refused."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_deploy.config import LoadedSettings, load_settings
from todo_deploy.mcp import configs, crds, kagent, tools
from todo_deploy.stages.lint import latest_version, schema_problems

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kagent"


@cache
def crd(kind: str) -> dict[str, Any]:
    name = kagent.CRD_NAMES[kind].split(".")[0]
    return yaml.load((FIXTURES / f"kagent.dev_{name}.yaml").read_text(), Loader=yaml.CSafeLoader)


def loaded_in(root: Path, **env: str) -> LoadedSettings:
    return load_settings(root, {"CLUSTER_PROVIDER": "minikube", "NAMESPACE": "shop",
                                "RELEASE_NAME": "todo-a", "KAGENT_NAMESPACE": "agents", **env})


def printed(loaded: LoadedSettings) -> list[dict[str, Any]]:
    text = configs.render("kagent", loaded)
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_fixtures_are_kagents_crds_serving_v1alpha2() -> None:
    for kind in kagent.CRD_NAMES:
        definition = crd(kind)
        assert definition["spec"]["names"]["kind"] == kind
        assert "v1alpha2" in crds.served_versions(definition)


def test_printed_custom_resources_fit_kagents_crds_strictly(tmp_path: Path) -> None:
    docs = printed(loaded_in(tmp_path))
    custom = [d for d in docs if d["apiVersion"].startswith("kagent.dev/")]
    assert sorted(d["kind"] for d in custom) == ["Agent", "RemoteMCPServer"]
    for doc in custom:
        assert crds.problems(doc, crd(doc["kind"])) == []


def test_printed_rbac_fits_kubernetes_schemas_strictly(tmp_path: Path) -> None:
    docs = [d for d in printed(loaded_in(tmp_path)) if not d["apiVersion"].startswith("kagent")]
    assert sorted(d["kind"] for d in docs) == ["Role", "RoleBinding", "ServiceAccount"]
    assert schema_problems(docs, latest_version()) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda a: a["spec"]["declarative"].update(systemPrompt="x"), "'systemPrompt' was unexpected"),
    (lambda a: a["spec"]["declarative"]["tools"][0]["mcpServer"].update(tools=["x"]),
     "'tools' was unexpected"),
    (lambda a: a["spec"].update(type="Custom"), "'Custom' is not one of"),
    (lambda a: a["metadata"].update(uid="abc"), "'uid' was unexpected"),
    (lambda a: a.update(apiVersion="kagent.dev/v9"), "version v9 is not served"),
])
def test_unknown_or_wrong_fields_are_refused(tmp_path: Path, mutate: Any, expected: str) -> None:
    agent = copy.deepcopy(kagent.agent(loaded_in(tmp_path).settings))
    mutate(agent)
    found = crds.problems(agent, crd("Agent"))
    assert any(expected in p for p in found), found


def test_agent_is_namespace_scoped_read_only_and_knows_the_app(tmp_path: Path) -> None:
    docs = {d["kind"]: d for d in printed(loaded_in(tmp_path))}
    agent, server = docs["Agent"], docs["RemoteMCPServer"]
    assert agent["metadata"]["namespace"] == server["metadata"]["namespace"] == "agents"
    (tool,) = agent["spec"]["declarative"]["tools"]
    assert tool["mcpServer"]["name"] == server["metadata"]["name"]
    assert tool["mcpServer"]["toolNames"] == list(tools.READ_ONLY_TOOLS)
    assert not set(tool["mcpServer"]["toolNames"]) & set(tools.CHANGE_TOOLS)
    assert server["spec"]["url"] == "http://host.minikube.internal:8765/mcp"
    prompt = agent["spec"]["declarative"]["systemMessage"]
    for name in ("todo-a-backend", "todo-a-frontend", "todo-a-postgres", "migrat", "`doctor`",
                 "`status`", "`logs`", "namespace `shop`"):
        assert name in prompt
    role, binding = docs["Role"], docs["RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "shop"
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    assert not any("secrets" in rule["resources"] for rule in role["rules"])
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "todo-a-agent",
                                    "namespace": "agents"}]
    assert agent["spec"]["declarative"]["deployment"]["serviceAccountName"] == "todo-a-agent"


def test_external_database_mode_names_no_database_pod(tmp_path: Path) -> None:
    loaded = loaded_in(tmp_path, DATABASE_MODE="external",
                       DATABASE_URL="postgresql://u:p@db.example:5432/todo")
    prompt = kagent.system_prompt(loaded.settings)
    assert "external PostgreSQL" in prompt and "todo-a-postgres" not in prompt
    assert "u:p@" not in configs.render("kagent", loaded)


def test_url_follows_the_provider_and_the_flag(tmp_path: Path) -> None:
    kind = loaded_in(tmp_path, CLUSTER_PROVIDER="kind")
    assert kagent.default_url(kind.settings, 9000) == "http://host.docker.internal:9000/mcp"
    text = configs.render("kagent", kind, url="http://10.0.0.5:8765/mcp")
    assert "url: http://10.0.0.5:8765/mcp" in text
