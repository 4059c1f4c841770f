"""The frontend behind an Ingress with TLS (issue 23, item 3): the settings' forms,
the self-signed TLS Secret the deploy makes, and how a user reaches the app through it.

INGRESS_HOST empty = no Ingress. INGRESS_TLS is one of
  none                 plain http through the controller
  self-signed          `inv deploy` makes <release>-ingress-tls for INGRESS_HOST (kept
                       until the host changes; the key is never printed)
  secret:NAME          an existing kubernetes.io/tls Secret in the namespace
  cert-manager:ISSUER  cert-manager's cluster-issuer annotation; it makes the Secret
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy.chart import values
from todo_deploy.config.ingress_forms import parse_tls

if TYPE_CHECKING:
    from todo_deploy.config import Settings
    from todo_deploy.kube import Kube

TLS_SECRET = "{release}-ingress-tls"  # the chart's names.ingressTls for every accepted release
HOST_ANNOTATION = "todo-chatbot/ingress-host"  # the host a self-signed Secret was made for
CERT_DAYS = 365
MINIKUBE_ADDON = "ingress"
MINIKUBE_CLASS = "nginx"  # the class minikube's ingress addon (ingress-nginx) serves


def chart_values(settings: Settings) -> dict[str, Any]:
    """The chart's `ingress` values."""
    tls = parse_tls(settings.ingress_tls)
    return {
        "enabled": bool(settings.ingress_host),
        "className": settings.ingress_class,
        "host": settings.ingress_host,
        "tls": {
            "mode": tls.mode,
            "secretName": tls.name if tls.mode == "secret" else "",
            "clusterIssuer": tls.name if tls.mode == "cert-manager" else "",
        },
    }


def scheme(settings: Settings) -> str:
    return "http" if parse_tls(settings.ingress_tls).mode == "none" else "https"


def public_url(settings: Settings) -> str:
    """The URL users open: https://INGRESS_HOST/ (http:// with INGRESS_TLS=none)."""
    return f"{scheme(settings)}://{settings.ingress_host}/"


def wants_minikube_addon(settings: Settings) -> bool:
    """`inv cluster` enables minikube's ingress addon: an Ingress is configured for the
    class that addon serves (another class is another controller's to serve)."""
    return (settings.cluster_provider == "minikube" and bool(settings.ingress_host)
            and settings.ingress_class in ("", MINIKUBE_CLASS))


# --- the self-signed TLS Secret ---------------------------------------------------


def self_signed_pair(host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for `host`, valid CERT_DAYS: with the
    `cryptography` package when it is installed, else the openssl CLI."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return openssl_pair(host)
    return _cryptography_pair(host)


def _cryptography_pair(host: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def openssl_pair(host: str, openssl: str | None = None) -> tuple[bytes, bytes]:
    binary = openssl or shutil.which("openssl")
    if not binary:
        raise RuntimeError("INGRESS_TLS=self-signed needs the `cryptography` package or the "
                           "openssl command; install one, or use INGRESS_TLS=secret:NAME")
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        argv = [binary, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", str(CERT_DAYS), "-subj", f"/CN={host}",
                "-addext", f"subjectAltName=DNS:{host}", "-keyout", str(key), "-out", str(cert)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:  # its stderr never holds the key
            raise RuntimeError(f"openssl could not make the certificate: {done.stderr.strip()[-300:]}")
        return cert.read_bytes(), key.read_bytes()


def tls_secret_name(settings: Settings) -> str:
    return TLS_SECRET.format(release=settings.release_name)


def tls_secret(settings: Settings, cert: bytes, key: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": tls_secret_name(settings),
            "namespace": settings.namespace,
            # No managed-by label: the raw path's prune (which selects on it) must not
            # take a Secret that is not rendered; `inv down` finds it by these.
            "labels": values.app_labels(settings) | {"app.kubernetes.io/component": "frontend"},
            "annotations": {HOST_ANNOTATION: settings.ingress_host},
        },
        "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()},
    }


def needs_new_certificate(existing: dict[str, Any] | None, host: str) -> bool:
    """A self-signed Secret is made again only when missing or made for another host."""
    if not existing:
        return True
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    data = existing.get("data") or {}
    return annotations.get(HOST_ANNOTATION) != host or not data.get("tls.crt") or not data.get("tls.key")


def ensure_tls_secret(kube: Kube, settings: Settings) -> list[str]:
    """With INGRESS_TLS=self-signed, the TLS Secret through the API (with the app's
    other Secrets, never in YAML); returns its name, or [] when nothing is ours to make."""
    if not settings.ingress_host or parse_tls(settings.ingress_tls).mode != "self-signed":
        return []
    name = tls_secret_name(settings)
    if needs_new_certificate(kube.get("v1", "Secret", name, settings.namespace), settings.ingress_host):
        kube.apply(tls_secret(settings, *self_signed_pair(settings.ingress_host)))
    return [name]


# --- reaching the app through the Ingress ------------------------------------------


def ingress_address(ingress: dict[str, Any] | None) -> str:
    """The address the controller gave the Ingress (status.loadBalancer.ingress), or ''."""
    if not ingress:
        return ""
    entries = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return next((str(e.get("ip") or e.get("hostname")) for e in entries
                 if e and (e.get("ip") or e.get("hostname"))), "")
