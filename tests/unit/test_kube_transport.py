"""The connection to the API server, against a local HTTPS server with its own CA:
a kubeconfig of each kind (client certificate as files and as data, bearer token
inline and from a file, basic auth, an exec plugin through the SDK), kubectl's
merge rules, and TLS that is never weaker than the kubeconfig says."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_deploy.kube import Kube, KubeError
from todo_deploy.kube import transport as kube_transport

# ---- a CA, a server certificate for 127.0.0.1 and a client certificate --------------------


def _certs(folder: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject: str, pub: Any, issuer: str, signer: Any, *, ca: bool = False,
             ip: str | None = None) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(pub).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ip:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False)
        return builder.sign(signer, hashes.SHA256())

    out: dict[str, Path] = {}

    def write(label: str, obj: Any) -> None:
        path = folder / f"{label}.pem"
        if isinstance(obj, x509.Certificate):
            path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        else:
            path.write_bytes(obj.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        out[label] = path

    ca_key, other_ca_key, server_key, client_key = key(), key(), key(), key()
    ca = cert("test-ca", ca_key.public_key(), "test-ca", ca_key, ca=True)
    write("ca", ca)
    write("other-ca", cert("other-ca", other_ca_key.public_key(), "other-ca", other_ca_key, ca=True))
    write("server", cert("server", server_key.public_key(), "test-ca", ca_key, ip="127.0.0.1"))
    write("server-key", server_key)
    write("client", cert("alice", client_key.public_key(), "test-ca", ca_key))
    write("client-key", client_key)
    return out


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        peer = self.connection.getpeercert() or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.startswith("/missing"):
            payload, status = {"kind": "Status", "message": "nope", "reason": "NotFound"}, 404
        else:
            payload = {"path": self.path, "method": self.command, "cn": cn, "body": body,
                       "authorization": self.headers.get("Authorization", ""),
                       "content_type": self.headers.get("Content-Type", "")}
            status = 200
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("pki")
    certs = _certs(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["server"], certs["server-key"])
    context.load_verify_locations(certs["ca"])
    context.verify_mode = ssl.CERT_OPTIONAL  # client certificate or a header
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    # shutdown() waits for the loop to poll: every 0.5 s by default
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield {"url": f"https://127.0.0.1:{httpd.server_address[1]}", "certs": certs, "folder": folder}
    httpd.shutdown()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any],
               context: str = "test", current: bool = True) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": f"{context}-cluster", "cluster": cluster}],
        "users": [{"name": f"{context}-user", "user": user}],
        "contexts": [{"name": context,
                      "context": {"cluster": f"{context}-cluster", "user": f"{context}-user"}}],
    }
    if current:
        doc["current-context"] = context
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kube_for(path: Path, monkeypatch: pytest.MonkeyPatch, context: str = "") -> Kube:
    monkeypatch.setenv("KUBECONFIG", str(path))
    return Kube(context)


# ---- each kind of user ------------------------------------------------------------------


def test_client_certificate_files_relative_to_the_kubeconfig(server, tmp_path, monkeypatch):
    # Relative paths, as minikube and kind write them next to the config.
    folder = server["folder"]
    path = kubeconfig(folder / "config-files", {"server": server["url"],
                                                 "certificate-authority": "ca.pem"},
                      {"client-certificate": "client.pem", "client-key": "client-key.pem"})
    monkeypatch.chdir(tmp_path)  # not where the files are
    kube = kube_for(path, monkeypatch)
    answer = kube.request("GET", "/version")
    assert kube.transport.kind == "direct"
    assert answer["cn"] == "alice" and answer["authorization"] == ""


def test_client_certificate_data_and_ca_data(server, tmp_path, monkeypatch):
    certs = server["certs"]
    path = kubeconfig(tmp_path / "config", {"server": server["url"],
                                            "certificate-authority-data": b64(certs["ca"])},
                      {"client-certificate-data": b64(certs["client"]),
                       "client-key-data": b64(certs["client-key"])})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    kube = kube_for(path, monkeypatch)
    assert kube.request("GET", "/api/v1/namespaces")["cn"] == "alice"
    assert list(scratch.iterdir()) == [], "the key's temporary copy is deleted once loaded"


def test_token_inline_and_from_file(server, tmp_path, monkeypatch):
    certs = server["certs"]
    cluster = {"server": server["url"], "certificate-authority": str(certs["ca"])}
    kube = kube_for(kubeconfig(tmp_path / "a", cluster, {"token": "t0ken"}), monkeypatch)
    assert kube.request("GET", "/version")["authorization"] == "Bearer t0ken"
    (tmp_path / "token").write_text("from-file\n")
    kube = kube_for(kubeconfig(tmp_path / "b", cluster, {"tokenFile": "token"}), monkeypatch)
    answer = kube.request("GET", "/version")
    assert answer["authorization"] == "Bearer from-file" and answer["cn"] == ""


def test_basic_auth(server, tmp_path, monkeypatch):
    cluster = {"server": server["url"], "certificate-authority": str(server["certs"]["ca"])}
    kube = kube_for(kubeconfig(tmp_path / "c", cluster, {"username": "u", "password": "p"}),
                    monkeypatch)
    assert kube.request("GET", "/")["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


def test_exec_plugin_goes_through_the_sdk(server, tmp_path, monkeypatch):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(textwrap.dedent("""
        import json
        print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1",
                          "kind": "ExecCredential", "status": {"token": "from-exec"}}))
    """))
    cluster = {"server": server["url"], "certificate-authority": str(server["certs"]["ca"])}
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                     "command": sys.executable, "args": [str(plugin)],
                     "interactiveMode": "Never"}}
    kube = kube_for(kubeconfig(tmp_path / "d", cluster, user), monkeypatch)
    assert kube.transport.kind == "sdk"
    answer = kube.request("PATCH", "/apis/apps/v1/x", body={"a": 1},
                          query=[("fieldManager", "todo-deploy")],
                          content_type="application/merge-patch+json")
    assert answer["authorization"] == "Bearer from-exec"
    assert answer["path"] == "/apis/apps/v1/x?fieldManager=todo-deploy"
    assert json.loads(answer["body"]) == {"a": 1}
    with pytest.raises(KubeError) as caught:
        kube.request("GET", "/missing")
    assert caught.value.status == 404 and caught.value.reason == "NotFound"


def test_requests_and_errors_on_the_direct_path(server, tmp_path, monkeypatch):
    cluster = {"server": server["url"], "certificate-authority": str(server["certs"]["ca"])}
    kube = kube_for(kubeconfig(tmp_path / "e", cluster, {"token": "x"}), monkeypatch)
    answer = kube.request("PATCH", "/apis/apps/v1/x", body={"a": [1]},
                          query=[("fieldManager", "todo-deploy"), ("force", "true")],
                          content_type="application/apply-patch+yaml")
    assert answer["path"] == "/apis/apps/v1/x?fieldManager=todo-deploy&force=true"
    assert json.loads(answer["body"]) == {"a": [1]}
    assert answer["content_type"] == "application/apply-patch+yaml"
    with pytest.raises(KubeError) as caught:
        kube.request("GET", "/missing")
    assert (caught.value.status, caught.value.reason, str(caught.value)) == (
        404, "NotFound", "HTTP 404: nope")


# ---- TLS is never weaker than the kubeconfig ----------------------------------------------


def test_a_server_signed_by_another_ca_is_refused(server, tmp_path, monkeypatch):
    cluster = {"server": server["url"], "certificate-authority": str(server["certs"]["other-ca"])}
    kube = kube_for(kubeconfig(tmp_path / "f", cluster, {"token": "x"}), monkeypatch)
    with pytest.raises(KubeError) as caught:
        kube.request("GET", "/version")
    assert caught.value.status == 0 and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_without_a_ca_the_system_trust_store_is_used_and_refuses(server, tmp_path, monkeypatch):
    kube = kube_for(kubeconfig(tmp_path / "g", {"server": server["url"]}, {"token": "x"}),
                    monkeypatch)
    with pytest.raises(KubeError, match="CERTIFICATE_VERIFY_FAILED"):
        kube.request("GET", "/version")


def test_insecure_skip_tls_verify_is_honoured_when_asked(server, tmp_path, monkeypatch):
    cluster = {"server": server["url"], "insecure-skip-tls-verify": True}
    kube = kube_for(kubeconfig(tmp_path / "h", cluster, {"token": "x"}), monkeypatch)
    assert kube.request("GET", "/version")["authorization"] == "Bearer x"


def test_tls_server_name_is_checked(server, tmp_path, monkeypatch):
    # The certificate names 127.0.0.1 only: asking for another name must fail.
    cluster = {"server": server["url"], "certificate-authority": str(server["certs"]["ca"]),
               "tls-server-name": "kubernetes.default"}
    kube = kube_for(kubeconfig(tmp_path / "i", cluster, {"token": "x"}), monkeypatch)
    with pytest.raises(KubeError) as caught:
        kube.request("GET", "/version")
    assert "kubernetes.default" in str(caught.value), caught.value


# ---- kubeconfig merging and errors ------------------------------------------------------------


def test_kubeconfig_list_first_definition_wins(tmp_path):
    first = kubeconfig(tmp_path / "one", {"server": "https://one"}, {"token": "1"}, "ctx")
    second = kubeconfig(tmp_path / "two", {"server": "https://two"}, {"token": "2"}, "ctx")
    other = kubeconfig(tmp_path / "three", {"server": "https://three"}, {"token": "3"}, "other",
                       current=False)
    env = {"KUBECONFIG": ":".join(str(p) for p in (tmp_path / "absent", first, second, other))}
    config = kube_transport.load_kubeconfig(kube_transport.kubeconfig_paths(env))
    target = kube_transport.resolve(config)
    assert (target.context, target.cluster["server"], target.user["token"]) == ("ctx", "https://one", "1")
    assert kube_transport.resolve(config, "other").cluster["server"] == "https://three"


def test_unknown_context_and_missing_file_say_so(tmp_path, monkeypatch):
    path = kubeconfig(tmp_path / "k", {"server": "https://x"}, {"token": "1"}, "known")
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(KubeError, match="context 'nope' not found.*known"):
        Kube("nope")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(KubeError, match="no kubeconfig found"):
        Kube("")


def test_plugin_and_proxy_users_need_the_sdk(tmp_path):
    def target(cluster: dict[str, Any], user: dict[str, Any]) -> kube_transport.Target:
        config = kube_transport.load_kubeconfig([kubeconfig(tmp_path / "m", cluster, user)])
        return kube_transport.resolve(config)

    assert target({"server": "https://x"}, {"exec": {"command": "aws"}}).needs_sdk
    assert target({"server": "https://x"}, {"auth-provider": {"name": "oidc"}}).needs_sdk
    assert target({"server": "https://x", "proxy-url": "http://p:3128"}, {"token": "t"}).needs_sdk
    assert not target({"server": "https://x"}, {"client-certificate": "c"}).needs_sdk


def test_a_direct_connection_does_not_import_the_kubernetes_sdk(server, tmp_path):
    cluster = {"server": server["url"], "certificate-authority": str(server["certs"]["ca"])}
    path = kubeconfig(tmp_path / "n", cluster, {"token": "x"})
    code = ("import sys; from todo_deploy.kube import Kube; k = Kube(''); "
            "print(k.request('GET', '/version')['authorization'], 'kubernetes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**_env(), "KUBECONFIG": str(path)}, check=False)
    assert done.stdout.split() == ["Bearer", "x", "False"], done.stderr


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
