"""The Helm chart, rendered offline by the embedded Helm v4 engine."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from todo_deploy import helm
from todo_deploy.chart import values as chart_values

ENGINE = helm.embedded()
PRODUCTION = yaml.safe_load((chart_values.CHART_DIR / "ci" / "production-values.yaml").read_text())


def template(values: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    return ENGINE.template(chart_values.CHART_DIR, "todo-chatbot", "todo", values, **kwargs)


def kinds(objects: list[dict[str, Any]]) -> set[str]:
    return {o["kind"] for o in objects}


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"backend": {"replicaCount": "two"}}, "replicaCount"),
        ({"frontend": {"replicas": 2}}, "replicas"),
        ({"surprise": True}, "surprise"),
        ({"frontend": {"service": {"type": "Ingress"}}}, "type"),
        ({"backend": {"replicaCount": 0}}, "replicaCount"),
        ({"backend": {"image": {"tag": "latest"}}}, "tag"),
        ({"migration": {"hook": True}}, "mode"),  # hook needs an external database
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], needle: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmValuesError) as caught:
        template(values)
    assert needle in str(caught.value)
    ok, output = ENGINE.lint(chart_values.CHART_DIR, values, strict=True)
    assert not ok and needle in output


def test_default_and_production_values_lint_clean() -> None:
    for values in ({}, PRODUCTION):
        ok, output = ENGINE.lint(chart_values.CHART_DIR, values, strict=True)
        assert ok, output


def test_pdb_and_hpa_only_with_the_capability() -> None:
    new = template(PRODUCTION, kube_version="v1.30.0", api_versions=["policy/v1", "autoscaling/v2"])
    assert {"PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds(new)
    hpa_targets = {o["spec"]["scaleTargetRef"]["name"] for o in new
                   if o["kind"] == "HorizontalPodAutoscaler"}
    assert hpa_targets == {"todo-chatbot-backend", "todo-chatbot-frontend"}
    # HPA owns the replica count when it renders.
    assert all("replicas" not in o["spec"] for o in new if o["kind"] == "Deployment")
    off = template({}, kube_version="v1.30.0", api_versions=["policy/v1", "autoscaling/v2"])
    assert not {"PodDisruptionBudget", "HorizontalPodAutoscaler"} & kinds(off)


# (cluster version, what it serves) -> (PDB apiVersion, HPA apiVersion); "" none rendered.
# The served lists are the clusters' own (`kubectl api-versions`), trimmed to these groups.
@pytest.mark.parametrize(("version", "served", "pdb", "hpa"), [
    ("v1.20.2", ["policy/v1beta1", "autoscaling/v2beta2"], "policy/v1beta1", "autoscaling/v2beta2"),
    ("v1.22.17", ["policy/v1", "policy/v1beta1", "autoscaling/v2beta2"], "policy/v1",
     "autoscaling/v2beta2"),
    ("v1.25.16", ["policy/v1", "autoscaling/v2", "autoscaling/v2beta2"], "policy/v1", "autoscaling/v2"),
    ("v1.30.0", ["policy/v1", "autoscaling/v2"], "policy/v1", "autoscaling/v2"),
    ("v1.11.10", ["policy/v1beta1", "autoscaling/v2beta1"], "policy/v1beta1", ""),
])
def test_pdb_and_hpa_in_the_version_the_cluster_serves(
        version: str, served: list[str], pdb: str, hpa: str) -> None:
    objects = template(PRODUCTION, kube_version=version, api_versions=served)
    versions = {o["kind"]: o["apiVersion"] for o in objects}
    assert versions.get("PodDisruptionBudget", "") == pdb
    assert versions.get("HorizontalPodAutoscaler", "") == hpa
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    for o in hpas:  # v2 and v2beta2 share the metric's shape
        [metric] = o["spec"]["metrics"]
        target = metric["resource"]["target"]
        assert target["type"] == "Utilization" and set(target) == {"type", "averageUtilization"}
    replicas = [o["spec"].get("replicas") for o in objects if o["kind"] == "Deployment"]
    assert replicas == ([None, None] if hpa else [3, 3])  # the HPA owns the count when it renders


def test_existing_secret_is_used_and_no_secret_rendered() -> None:
    values = {"secrets": {"existingSecret": {"backend": "mine-b", "frontend": "mine-f",
                                             "postgres": "mine-p"},
                          "secretChecksum": "a" * 64}}
    objects = template(values)
    assert "Secret" not in kinds(objects)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    backend = deployments["todo-chatbot-backend"]["spec"]["template"]
    assert backend["metadata"]["annotations"]["checksum/secret"] == "a" * 64
    assert backend["spec"]["containers"][0]["envFrom"][1]["secretRef"]["name"] == "mine-b"
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mine-p"


def test_chart_creates_secrets_without_existing_secret() -> None:
    objects = template({"secrets": {"authSecret": "x" * 40, "postgresPassword": "pw"}})
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    assert set(secrets) == {"todo-chatbot-backend", "todo-chatbot-frontend", "todo-chatbot-postgres"}
    import base64

    url = base64.b64decode(secrets["todo-chatbot-backend"]["data"]["DATABASE_URL"]).decode()
    assert url == "postgresql://todo:pw@todo-chatbot-postgres:5432/todo"
    # PROXY_SECRET: generated once, the same in both apps' Secrets; a given one is used as is.
    proxy = {name: base64.b64decode(secrets[name]["data"]["PROXY_SECRET"]).decode()
             for name in ("todo-chatbot-backend", "todo-chatbot-frontend")}
    assert len(set(proxy.values())) == 1 and len(proxy["todo-chatbot-backend"]) >= 16
    given = template({"secrets": {"proxySecret": "p" * 32}})
    assert {base64.b64decode(o["data"]["PROXY_SECRET"]).decode()
            for o in given if o["kind"] == "Secret" and "PROXY_SECRET" in o["data"]} == {"p" * 32}


def test_config_checksum_changes_with_config() -> None:
    def checksum(values: dict[str, Any]) -> str:
        dep = next(o for o in template(values) if o["kind"] == "Deployment")
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) != checksum({"config": {"llmModel": "other"}})


def test_hooks_and_tests() -> None:
    objects = template({})
    tests = [o for o in objects if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    assert {t["metadata"]["name"] for t in tests} == {"todo-chatbot-test-backend",
                                                      "todo-chatbot-test-frontend"}
    urls = {t["spec"]["containers"][0]["command"][-1] for t in tests}
    assert urls == {"http://todo-chatbot-backend:8000/ready", "http://todo-chatbot-frontend:80/"}
    for t in tests:
        assert t["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
        assert t["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    job = next(o for o in objects if o["kind"] == "Job")
    assert "annotations" not in job["metadata"]  # bundled DB: a regular Job, not a hook
    hooked = next(o for o in template(PRODUCTION) if o["kind"] == "Job")
    assert hooked["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in hooked["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    # The network policy lets the test pods reach the backend.
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy"
              and o["metadata"]["name"] == "todo-chatbot-backend")
    sources = [p["podSelector"]["matchLabels"] for p in policy["spec"]["ingress"][0]["from"]]
    assert {"app.kubernetes.io/component": "test", "app.kubernetes.io/instance": "todo-chatbot"} in sources


def test_external_mode_renders_no_database() -> None:
    values = copy.deepcopy(PRODUCTION)
    objects = template(values)
    assert not [o for o in objects if "postgres" in o["metadata"]["name"]]


@pytest.mark.parametrize(
    ("service_type", "expected"),
    [
        ("LoadBalancer", ["minikube service todo-chatbot-frontend -n todo --url", "minikube tunnel",
                          "port-forward svc/todo-chatbot-frontend"]),
        ("NodePort", ["minikube service todo-chatbot-frontend -n todo --url", "nodePort",
                      "port-forward svc/todo-chatbot-frontend"]),
        ("ClusterIP", ["port-forward svc/todo-chatbot-frontend 8080:80"]),
    ],
)
def test_notes_say_how_to_reach_the_app(service_type: str, expected: list[str]) -> None:
    notes = ENGINE.notes(chart_values.CHART_DIR, "todo-chatbot", "todo",
                         {"frontend": {"service": {"type": service_type}}})
    for text in expected:
        assert text in notes
    if service_type == "ClusterIP":
        assert "minikube service" not in notes


def test_chart_labels_say_helm() -> None:
    for obj in template({}):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "todo-chatbot"
        assert labels["app.kubernetes.io/instance"] == "todo-chatbot"


def test_persistence_can_be_turned_off() -> None:
    def statefulset(values: dict[str, Any]) -> dict[str, Any]:
        return next(o for o in template(values) if o["kind"] == "StatefulSet")

    kept = statefulset({})["spec"]
    assert kept["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in kept["volumeClaimTemplates"][0]["spec"]  # the default class
    off = statefulset({"database": {"persistence": {"enabled": False}}})["spec"]
    assert "volumeClaimTemplates" not in off
    assert {"name": "data", "emptyDir": {}} in off["template"]["spec"]["volumes"]


# ---- NetworkPolicies, checked statically (the test cluster does not enforce them) -----------

Peer = dict[str, str]  # a pod's labels; {} is an address outside the cluster
OUTSIDE: Peer = {}


def pod(component: str) -> Peer:
    names = {"frontend": "todo-frontend", "backend": "todo-backend", "database": "postgresql",
             "migration": "todo-migrate", "test": "todo-test"}
    return {"app.kubernetes.io/name": names[component], "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": "todo-chatbot"}


def _selects(selector: dict[str, Any], labels: Peer) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the chart uses matchLabels only
    return labels != OUTSIDE and selector.get("matchLabels", {}).items() <= labels.items()


def _rule_allows(rule: dict[str, Any], peers_key: str, peer: Peer, port: int, protocol: str) -> bool:
    ports = rule.get("ports") or []
    if ports and not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
        return False
    peers = rule.get(peers_key) or []
    return not peers or any(_selects(p["podSelector"], peer) for p in peers if "podSelector" in p)


def allowed(policies: list[dict[str, Any]], source: Peer, dest: Peer, port: int,
            protocol: str = "TCP") -> bool:
    """Would a policy engine let `source` open `port` on `dest` (both directions checked)?"""
    def side(pod_labels: Peer, direction: str, peers_key: str, other: Peer) -> bool:
        if pod_labels == OUTSIDE:
            return True
        selecting = [p["spec"] for p in policies if _selects(p["spec"]["podSelector"], pod_labels)
                     or p["spec"]["podSelector"] == {}]
        selecting = [s for s in selecting if direction in s["policyTypes"]]
        rules = [r for s in selecting for r in s.get(direction.lower(), []) or []]
        return not selecting or any(_rule_allows(r, peers_key, other, port, protocol) for r in rules)

    return side(source, "Egress", "to", dest) and side(dest, "Ingress", "from", source)


def policies_of(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in template(values) if o["kind"] == "NetworkPolicy"]


def test_network_policies_allow_only_the_app_paths_offline() -> None:
    policies = policies_of({})
    front, back, db, mig, test = (pod(c) for c in ("frontend", "backend", "database", "migration",
                                                   "test"))
    wanted = {  # (from, to, port): allowed?
        ("outside", "frontend", 3000): True, ("outside", "backend", 8000): False,
        ("outside", "database", 5432): False,
        ("frontend", "backend", 8000): True, ("frontend", "database", 5432): False,
        ("frontend", "outside", 443): False, ("frontend", "outside", 80): False,
        ("test", "backend", 8000): True, ("test", "frontend", 3000): True,
        ("backend", "database", 5432): True, ("backend", "frontend", 3000): False,
        ("backend", "outside", 443): False,  # the offline agent needs no LLM endpoint
        ("backend", "outside", 5432): False,
        ("migration", "database", 5432): True, ("migration", "outside", 443): False,
        ("migration", "backend", 8000): False,
        ("database", "outside", 443): False, ("database", "backend", 8000): False,
        ("database", "outside", 53): False,
    }
    peers = {"outside": OUTSIDE, "frontend": front, "backend": back, "database": db,
             "migration": mig, "test": test}
    got = {k: allowed(policies, peers[k[0]], peers[k[1]], k[2]) for k in wanted}
    assert got == wanted
    for component in ("frontend", "backend", "migration"):  # DNS, UDP and TCP
        assert allowed(policies, pod(component), OUTSIDE, 53, "UDP"), component
        assert allowed(policies, pod(component), OUTSIDE, 53, "TCP"), component
    database = next(p for p in policies if p["metadata"]["name"] == "todo-chatbot-postgres")
    assert database["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in database["spec"]  # with policyType Egress: the database reaches nothing


@pytest.mark.parametrize(
    ("config", "port"),
    [
        ({"llmProvider": "openai"}, 443),  # api.openai.com
        ({"llmProvider": "openai", "openaiBaseUrl": "https://api.groq.com/openai/v1"}, 443),
        ({"llmProvider": "auto", "openaiBaseUrl": "http://ollama.ai.svc:11434/v1"}, 11434),
        ({"llmProvider": "openai", "openaiBaseUrl": "http://llm.local/v1"}, 80),
        ({"llmProvider": "openai", "openaiBaseUrl": "https://[fd00::1]:8443/v1"}, 8443),
    ],
)
def test_the_backend_reaches_the_llm_endpoints_port_only(config: dict[str, str], port: int) -> None:
    policies = policies_of({"config": config})
    assert allowed(policies, pod("backend"), OUTSIDE, port)
    others = {443, 80, 8443, 11434} - {port}
    assert not any(allowed(policies, pod("backend"), OUTSIDE, p) for p in others)
    assert not allowed(policies, pod("frontend"), OUTSIDE, port)
    assert not allowed(policies, pod("migration"), OUTSIDE, port)


def test_with_an_external_database_its_port_is_reachable() -> None:
    values = {"database": {"mode": "external", "externalPort": 6543},
              "secrets": {"databaseUrl": "postgresql://u:p@db.example.com:6543/todo"}}
    policies = policies_of(values)
    assert not [p for p in policies if p["metadata"]["name"].endswith("-postgres")]
    for component in ("backend", "migration"):
        assert allowed(policies, pod(component), OUTSIDE, 6543), component
        assert not allowed(policies, pod(component), OUTSIDE, 5432), component
    assert not allowed(policies, pod("frontend"), OUTSIDE, 6543)


def test_network_policies_can_be_turned_off() -> None:
    assert policies_of({"networkPolicy": {"enabled": False}}) == []
    assert allowed([], pod("database"), OUTSIDE, 443)  # the evaluator: nothing selects, all open


@pytest.mark.parametrize(("service_type", "policy"),
                         [("LoadBalancer", "Local"), ("NodePort", "Local"), ("ClusterIP", None)])
def test_frontend_service_keeps_the_client_address(service_type: str, policy: str | None) -> None:
    """Issue 19: with externalTrafficPolicy Cluster the pod sees node addresses, so the
    per-address limits apply to the whole site; TRUSTED_PROXIES comes from a value."""
    objects = template({"frontend": {"service": {"type": service_type},
                                     "trustedProxies": "10.0.0.0/8"}})
    service = next(o for o in objects if o["kind"] == "Service"
                   and o["metadata"]["name"] == "todo-chatbot-frontend")
    assert service["spec"].get("externalTrafficPolicy") == policy
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == "todo-chatbot-frontend")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRUSTED_PROXIES"] == "10.0.0.0/8"
    cluster = template({"frontend": {"service": {"externalTrafficPolicy": "Cluster"}}})
    assert any(o["kind"] == "Service" and o["spec"].get("externalTrafficPolicy") == "Cluster" for o in cluster)
    import helm_python

    with pytest.raises(helm_python.HelmValuesError):
        template({"frontend": {"service": {"externalTrafficPolicy": "Nearest"}}})


def test_rendered_documents_are_parsed_by_libyaml_into_the_same_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's objects come from libyaml's safe loader (the pure-Python one was most of
    a render's time), and are the objects the pure-Python safe loader makes of the same text."""
    import helm_python

    from todo_deploy.helm import sdk_internals as helm_sdk

    with helm_python.Chart.load(chart_values.CHART_DIR) as chart:
        rendered = helm_sdk.render(chart, PRODUCTION, name="todo-chatbot", namespace="todo",
                                   kube_version=None, api_versions=())
    texts = [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
    loaders: list[type] = []

    class Recording(yaml.CSafeLoader):  # type: ignore[name-defined,misc]
        def __init__(self, stream: str) -> None:
            loaders.append(type(self))
            super().__init__(stream)

    monkeypatch.setattr(yaml, "CSafeLoader", Recording)
    parsed = helm.parse_documents(texts)
    assert loaders and set(loaders) == {Recording}
    pure = [doc for text in texts for doc in yaml.load_all(text, Loader=yaml.SafeLoader) if isinstance(doc, dict)]
    assert parsed == pure and len(parsed) > 10
