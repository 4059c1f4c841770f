"""Issue 23 item 3: the frontend behind an Ingress with TLS, optional.

The test cluster has no ingress controller: the chart's rendering and validation, the
self-signed Secret, the workflow's decisions (minikube addon, `inv open`, verify's way
in) and the doctor rule are tested here with stand-ins; one live check applies the
rendered Ingress to the test cluster's API server and reads it back
(tests/integration/test_ingress_live.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.unit.test_cluster_providers import NOT_FOUND, STATUS, FakeRunner
from tests.unit.test_parity import IMAGES, helm_objects, key, normal, raw_objects
from todo_deploy import access, helm
from todo_deploy.access import app_url
from todo_deploy.chart import ingress, manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import LoadedSettings, Settings, SettingsError, load_settings
from todo_deploy.doctor import Snapshot, Target, diagnose
from todo_deploy.doctor.ingress import ingress_findings
from todo_deploy.release.objects import ensure_secrets
from todo_deploy.stages import cluster
from todo_deploy.stages.lint import BASELINE_VERSION, CAPABILITIES, latest_version, schema_problems
from todo_deploy.stages.verify.client import FrontendClient, wait_until_up

HOST = "todo.example.test"
PRODUCTION = yaml.safe_load((chart_values.CHART_DIR / "ci" / "production-values.yaml").read_text())


def load(tmp_path: Path, **env: str) -> Settings:
    return load_settings(tmp_path, environ=env).settings


def the_ingress(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == "Ingress"]
    return found


# --- settings --------------------------------------------------------------------


def test_no_host_no_ingress_in_either_path(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert chart_values.helm_values(settings, IMAGES)["ingress"]["enabled"] is False
    assert not [o for o in raw_objects(settings) if o["kind"] == "Ingress"]


@pytest.mark.parametrize(("env", "message"), [
    ({"INGRESS_HOST": "https://todo.example.com"}, "must be a host name"),
    ({"INGRESS_HOST": "Todo.Example.com"}, "must be a host name"),
    ({"INGRESS_TLS": "letsencrypt"}, "must be none, self-signed, secret:NAME or cert-manager:ISSUER"),
    ({"INGRESS_TLS": "secret:"}, "secret: needs a resource name"),
    ({"INGRESS_TLS": "self-signed:x"}, "self-signed takes no name"),
    ({"INGRESS_CLASS": "Nginx"}, "must be an IngressClass name"),
])
def test_bad_ingress_settings_are_refused_with_the_key(tmp_path: Path, env: dict[str, str],
                                                       message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, **env)
    (problem,) = caught.value.problems
    assert problem.startswith(next(iter(env))) and message in problem


# --- the chart -----------------------------------------------------------------------


@pytest.mark.parametrize(("tls", "secret", "annotations"), [
    ("none", None, {}),
    ("self-signed", "todo-chatbot-ingress-tls", {}),
    ("secret:my-cert", "my-cert", {}),
    ("cert-manager:letsencrypt", "todo-chatbot-ingress-tls",
     {"cert-manager.io/cluster-issuer": "letsencrypt"}),
])
def test_the_ingress_per_tls_mode(tmp_path: Path, tls: str, secret: str | None,
                                  annotations: dict[str, str]) -> None:
    settings = load(tmp_path, INGRESS_HOST=HOST, INGRESS_TLS=tls)
    obj = the_ingress(helm_objects(settings))
    assert obj["apiVersion"] == "networking.k8s.io/v1"
    assert obj["metadata"]["name"] == "todo-chatbot-frontend"
    assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "frontend"
    assert (obj["metadata"].get("annotations") or {}) == annotations
    spec = obj["spec"]
    assert spec["ingressClassName"] == "nginx"
    (rule,) = spec["rules"]
    assert rule["host"] == HOST
    assert rule["http"]["paths"] == [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "todo-chatbot-frontend", "port": {"name": "http"}}},
    }]
    if secret is None:
        assert "tls" not in spec
    else:
        assert spec["tls"] == [{"hosts": [HOST], "secretName": secret}]


def test_an_empty_class_leaves_it_to_the_clusters_default(tmp_path: Path) -> None:
    settings = load(tmp_path, INGRESS_HOST=HOST, INGRESS_CLASS="")
    assert "ingressClassName" not in the_ingress(helm_objects(settings))["spec"]
    aks = load(tmp_path, INGRESS_HOST=HOST, INGRESS_CLASS="webapprouting.kubernetes.azure.com")
    assert the_ingress(helm_objects(aks))["spec"]["ingressClassName"] == aks.ingress_class


def test_raw_and_helm_render_the_same_ingress(tmp_path: Path) -> None:
    settings = load(tmp_path, INGRESS_HOST=HOST, INGRESS_TLS="cert-manager:issuer")
    raw = {key(o): normal(o) for o in raw_objects(settings)}
    chart = {key(o): normal(o) for o in helm_objects(settings)}
    assert sorted(raw) == sorted(chart)
    name = ("Ingress", "todo-chatbot-frontend")
    assert raw[name] == chart[name]


@pytest.mark.parametrize(("ingress_values", "needle"), [
    ({"enabled": True}, "/ingress/host"),
    ({"enabled": True, "host": "x.test", "tls": {"mode": "letsencrypt"}}, "/ingress/tls/mode"),
    ({"enabled": True, "host": "https://x.test"}, "/ingress/host"),
    ({"enabled": True, "host": "x.test", "annotations": {}}, "additional properties 'annotations'"),
    ({"enabled": True, "host": "x.test", "path": "app"}, "/ingress/path"),
    ({"enabled": True, "host": "x.test", "tls": {"mode": "secret"}},
     "ingress.tls.mode=secret needs ingress.tls.secretName"),
    ({"enabled": True, "host": "x.test", "tls": {"mode": "cert-manager"}},
     "ingress.tls.mode=cert-manager needs ingress.tls.clusterIssuer"),
])
def test_bad_ingress_values_are_refused(ingress_values: dict[str, Any], needle: str) -> None:
    with pytest.raises(Exception) as caught:  # schema and template errors differ in type
        manifests.render_chart({"ingress": ingress_values}, "todo-chatbot", "todo")
    assert needle in str(caught.value)


def test_ingress_lints_clean_and_passes_the_kubernetes_schema(tmp_path: Path) -> None:
    engine = helm.embedded()
    ok, output = engine.lint(chart_values.CHART_DIR, PRODUCTION, strict=True)
    assert ok, output
    for version in (BASELINE_VERSION, latest_version()):  # what `inv lint` validates against
        objects = engine.template(chart_values.CHART_DIR, "todo-chatbot", "todo", PRODUCTION,
                                  kube_version=f"v{version}.0", api_versions=CAPABILITIES)
        the_ingress(objects)  # production values have one: `inv lint` checks it too
        assert schema_problems(objects, version) == []
    broken = the_ingress(objects) | {"spec": {"rules": [{"host": HOST, "http": {"paths": [
        {"path": "/", "backend": {"serviceName": "x", "servicePort": 80}}]}}]}}
    assert schema_problems([broken], "1.30")  # the schema check is not vacuous


def notes(values: dict[str, Any]) -> str:
    import helm_python

    with helm_python.Chart.load(chart_values.CHART_DIR) as chart:
        rendered = chart.render(values, name="todo-chatbot", namespace="todo", is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def test_helms_notes_give_the_ingress_url_only_with_an_ingress() -> None:
    with_tls = notes({"ingress": {"enabled": True, "host": HOST, "tls": {"mode": "self-signed"}}})
    assert f"https://{HOST}/" in with_tls and "get ingress todo-chatbot-frontend" in with_tls
    plain = notes({"ingress": {"enabled": True, "host": HOST}})
    assert f"http://{HOST}/" in plain and "https://" not in plain
    assert "Ingress" not in notes({})


# --- the self-signed Secret --------------------------------------------------------


class FakeKube:
    """Secrets by name; counts the applies."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.applied: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict | None:
        return self.objects.get(f"{kind}/{name}")

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        self.objects[name] = obj
        self.applied.append(name)
        return obj


def certificate(secret: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def test_self_signed_secret_is_made_with_the_others_once_per_host(tmp_path: Path) -> None:
    kube = FakeKube()
    settings = load(tmp_path, INGRESS_HOST=HOST)
    names = ensure_secrets(kube, settings)  # type: ignore[arg-type]
    assert names[-1] == "todo-chatbot-ingress-tls"
    secret = kube.objects["Secret/todo-chatbot-ingress-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    cert = certificate(secret)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST]
    assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"])
    # Not pruned by the raw path (which selects on managed-by), found by `inv down`'s labels.
    assert "app.kubernetes.io/managed-by" not in secret["metadata"]["labels"]
    assert chart_values.app_labels(settings).items() <= secret["metadata"]["labels"].items()

    ensure_secrets(kube, settings)  # type: ignore[arg-type]
    assert kube.applied.count("Secret/todo-chatbot-ingress-tls") == 1  # kept: same host

    moved = load(tmp_path, INGRESS_HOST="other.example.test")
    ensure_secrets(kube, moved)  # type: ignore[arg-type]
    assert kube.applied.count("Secret/todo-chatbot-ingress-tls") == 2
    renewed = certificate(kube.objects["Secret/todo-chatbot-ingress-tls"])
    assert renewed.subject.rfc4514_string() == "CN=other.example.test"


@pytest.mark.parametrize("tls", ["none", "secret:mine", "cert-manager:issuer"])
def test_no_secret_is_made_unless_self_signed(tmp_path: Path, tls: str) -> None:
    kube = FakeKube()
    ensure_secrets(kube, load(tmp_path, INGRESS_HOST=HOST, INGRESS_TLS=tls))  # type: ignore[arg-type]
    assert "Secret/todo-chatbot-ingress-tls" not in kube.applied
    ensure_secrets(kube, load(tmp_path))  # type: ignore[arg-type]  # no host: no Ingress
    assert "Secret/todo-chatbot-ingress-tls" not in kube.applied


def test_the_openssl_fallback_makes_a_pair_for_the_host() -> None:
    cert_pem, key_pem = ingress.openssl_pair(HOST)
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST]
    assert b"PRIVATE KEY" in key_pem


def test_the_key_is_never_in_the_rendered_objects_or_the_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert_pem, key_pem = ingress.self_signed_pair(HOST)
    monkeypatch.setattr(ingress, "self_signed_pair", lambda host: (cert_pem, key_pem))
    kube = FakeKube()
    settings = load(tmp_path, INGRESS_HOST=HOST)
    ensure_secrets(kube, settings)  # type: ignore[arg-type]
    body = key_pem.decode().splitlines()[1]  # a line of the key itself
    stored = kube.objects["Secret/todo-chatbot-ingress-tls"]["data"]["tls.key"]
    assert base64.b64decode(stored) == key_pem  # the key did reach the Secret...
    rendered = yaml.safe_dump_all(raw_objects(settings)) + yaml.safe_dump_all(helm_objects(settings))
    assert body not in rendered and stored not in rendered  # ...and nothing rendered
    assert "ingress-tls" not in "".join(o["metadata"]["name"] for o in raw_objects(settings)
                                        if o["kind"] == "Secret")
    from todo_deploy.cli.deploy import show_dry_run

    monkeypatch.setenv("TODO_DEPLOY_ROOT", str(tmp_path))
    show_dry_run(LoadedSettings(settings, root=tmp_path), helm=False)
    said = capsys.readouterr()
    assert body not in said.out + said.err and "Ingress/todo-chatbot-frontend" in said.out


# --- inv cluster: minikube's ingress addon -------------------------------------------


def addon_calls(runner: FakeRunner) -> list[str]:
    return [c[3] for c in runner.calls if c[:3] == ["minikube", "addons", "enable"]]


@pytest.mark.parametrize(("overrides", "enabled"), [
    ({}, False),
    ({"ingress_host": HOST}, True),
    ({"ingress_host": HOST, "ingress_class": ""}, True),
    ({"ingress_host": HOST, "ingress_class": "traefik"}, False),  # another controller's class
    ({"ingress_host": HOST, "minikube_addons": "ingress"}, True),  # once, not twice
])
def test_inv_cluster_enables_the_ingress_addon_when_an_ingress_is_configured(
    overrides: dict[str, str], enabled: bool,
) -> None:
    runner = FakeRunner({tuple(STATUS): NOT_FOUND})
    check = cluster.ensure_minikube(Settings(**overrides), runner, [].append)  # type: ignore[arg-type]
    assert addon_calls(runner) == ["storage-provisioner", *(["ingress"] if enabled else [])]
    assert ("ingress" in check.evidence) == enabled


# --- inv open and verify: through the Ingress when it has an address ----------------


def ingress_obj(address: str = "", hostname: str = "") -> dict[str, Any]:
    entry = {k: v for k, v in (("ip", address), ("hostname", hostname)) if v}
    status = {"loadBalancer": {"ingress": [entry]}} if entry else {"loadBalancer": {}}
    return {"kind": "Ingress", "metadata": {"name": "todo-chatbot-frontend",
                                            "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "nginx"}, "status": status}


NODEPORT_SERVICE = {"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31080}]}}
NODES = [{"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.2"}],
                     "conditions": [{"type": "Ready", "status": "True"}]}}]


def test_access_goes_through_an_ingress_with_an_address(tmp_path: Path) -> None:
    settings = load(tmp_path, INGRESS_HOST=HOST, CLUSTER_PROVIDER="existing")
    asked: list[str] = []
    plan = access.choose_access(settings, NODEPORT_SERVICE, NODES,
                                reachable=lambda url: asked.append(url) or True,
                                ingress=ingress_obj("192.0.2.9"))
    assert (plan.kind, plan.url, plan.host) == ("ingress", "https://192.0.2.9/", HOST)
    assert asked == ["https://192.0.2.9/"]
    plain = load(tmp_path, INGRESS_HOST=HOST, INGRESS_TLS="none", CLUSTER_PROVIDER="existing")
    named = access.choose_access(plain, NODEPORT_SERVICE, NODES, reachable=lambda _: True,
                                 ingress=ingress_obj(hostname="lb.example.net"))
    assert named.url == "http://lb.example.net/"


@pytest.mark.parametrize(("obj", "answers", "why"), [
    (None, True, "Ingress todo-chatbot-frontend not found"),
    (ingress_obj(), True, "Ingress todo-chatbot-frontend has no address (no ingress controller"),
    (ingress_obj("192.0.2.9"), False, "Ingress https://192.0.2.9/ did not answer"),
])
def test_without_a_working_ingress_access_falls_back_saying_why(
    tmp_path: Path, obj: dict[str, Any] | None, answers: bool, why: str,
) -> None:
    settings = load(tmp_path, INGRESS_HOST=HOST, CLUSTER_PROVIDER="existing")
    plan = access.choose_access(settings, NODEPORT_SERVICE, NODES, ingress=obj,
                                reachable=lambda url: answers or "31080" in url)
    assert (plan.kind, plan.host) == ("nodeport", "")
    failed = access.choose_access(settings, NODEPORT_SERVICE, NODES, ingress=obj,
                                  reachable=lambda url: False)
    assert failed.kind == "port-forward" and failed.detail.startswith(why)


def test_no_ingress_host_never_reads_or_uses_an_ingress(tmp_path: Path) -> None:
    settings = load(tmp_path, CLUSTER_PROVIDER="existing")
    plan = access.choose_access(settings, NODEPORT_SERVICE, NODES, reachable=lambda _: True,
                                ingress=ingress_obj("192.0.2.9"))
    assert plan.kind == "nodeport"
    assert access.read_ingress(settings, kube=None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("tls", "url", "self_signed"), [
    ("self-signed", f"https://{HOST}/", True),
    ("cert-manager:issuer", f"https://{HOST}/", False),
    ("none", f"http://{HOST}/", False),
])
def test_inv_open_prints_the_hosts_url_and_where_it_must_point(
    tmp_path: Path, tls: str, url: str, self_signed: bool,
) -> None:
    loaded = load_settings(tmp_path, environ={"INGRESS_HOST": HOST, "INGRESS_TLS": tls})
    plan = access.AccessPlan("ingress", "https://192.0.2.9/", "Ingress at 192.0.2.9", host=HOST)
    app = app_url.direct_url(loaded, plan)
    assert (app.url, app.kind) == (url, "ingress")
    assert f"`192.0.2.9 {HOST}`" in app.detail
    assert ("self-signed" in app.detail) == self_signed
    assert not app_url.reusable(app, 0, False)  # asked again each time, never kept


def test_verify_sends_the_ingress_host_and_accepts_its_certificate() -> None:
    client = FrontendClient("https://192.0.2.9", host=HOST)
    assert client._http.headers["Host"] == HOST
    assert client.clone()._http.headers["Host"] == HOST
    direct = FrontendClient("http://192.0.2.2:31080")
    assert "Host" not in direct._http.headers  # the URL's own host, per request


def test_wait_until_up_sends_the_host_header(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    seen: list[dict[str, Any]] = []

    class Recording(httpx.Client):
        def __init__(self, **kwargs: Any) -> None:
            seen.append(kwargs)
            super().__init__(**kwargs, transport=httpx.MockTransport(
                lambda request: httpx.Response(200 if request.headers["host"] == HOST else 404)))

    monkeypatch.setattr(httpx, "Client", Recording)
    assert wait_until_up("https://192.0.2.9", deadline_s=1, host=HOST) == (True, "GET / -> 200")
    assert seen[0]["verify"] is False


# --- the doctor -------------------------------------------------------------------------


NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
NGINX_CLASS = {"kind": "IngressClass", "metadata": {"name": "nginx"}}
DEFAULT_CLASS = {"kind": "IngressClass", "metadata": {
    "name": "x", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}}


@pytest.mark.parametrize(("provider", "fix"), [
    ("minikube", "no ingress controller: `minikube addons enable ingress -p p1`"),
    ("kind", "no ingress controller: install one that serves the class"),
])
def test_an_ingress_without_address_or_class_names_the_missing_controller(
    provider: str, fix: str,
) -> None:
    (finding,) = ingress_findings([ingress_obj()], [], Target(provider, minikube_profile="p1"), NOW)
    assert finding.object == "Ingress/todo-chatbot-frontend"
    assert finding.evidence.startswith("no ingress controller: no IngressClass serves class nginx")
    assert "after 300 s" in finding.evidence
    assert finding.fix.startswith(fix)


def test_an_ingress_with_an_address_or_still_young_is_fine() -> None:
    target = Target("minikube")
    assert ingress_findings([ingress_obj("192.0.2.9")], [], target, NOW) == []
    young = ingress_findings([ingress_obj()], [], target, datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert young == []
    late = NOW + timedelta(minutes=1)
    assert len(ingress_findings([ingress_obj()], [], target, late)) == 1


def test_a_served_class_without_an_address_points_at_the_controller() -> None:
    (finding,) = ingress_findings([ingress_obj()], [NGINX_CLASS], Target("minikube"), NOW)
    assert "IngressClass nginx exists but its controller has not admitted it" in finding.evidence
    assert "minikube addons" not in finding.fix
    unnamed = ingress_obj()
    del unnamed["spec"]["ingressClassName"]
    (default,) = ingress_findings([unnamed], [DEFAULT_CLASS], Target("minikube"), NOW)
    assert "(default) exists" in default.evidence


def test_diagnose_reports_the_ingress_from_a_snapshot() -> None:
    snapshot = Snapshot("todo", observed_at=NOW.isoformat(), ingresses=[ingress_obj()])
    findings = diagnose(snapshot, Target("minikube", minikube_profile="p1"))
    assert [f.object for f in findings] == ["Ingress/todo-chatbot-frontend"]
    assert "`minikube addons enable ingress -p p1`" in findings[0].fix
