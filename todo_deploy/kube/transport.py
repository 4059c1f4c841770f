"""How `kube.Kube` reaches the API server: a urllib3 pool built from the kubeconfig, or
the kubernetes SDK when the kubeconfig's user needs it.

Importing `kubernetes` costs 0.3-0.6 s on this project's machines: its package
imports the client and every generated model, the dynamic client, watch, stream
and leader election, and `kubernetes.config` needs `kubernetes.client`. Users
that authenticate with a client certificate, a bearer token (inline or
`tokenFile`) or basic auth - minikube, kind, Docker Desktop, k3s, kubeadm, this
project's test cluster - need none of it: TLS settings and one header, which
PyYAML and urllib3 give for a few milliseconds. Users whose credentials come
from a plugin (`exec`: EKS, GKE's gke-gcloud-auth-plugin, kubelogin/OIDC;
`auth-provider`) or a `proxy-url` go through the SDK's ApiClient, which runs
and refreshes them: the SDK stays the reference for everything beyond the
simple cases, and this module is the one place that decides which is used.

Kubeconfig reading follows kubectl's rules: KUBECONFIG is a list of files
(the first to define a cluster/user/context name or current-context wins),
else ~/.kube/config; relative file paths are relative to the file that names
them.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from todo_deploy.config.kubeconfig import (
    Kubeconfig,
    KubeconfigError,
    kubeconfig_paths,
    load_kubeconfig,
)

# Keys of a kubeconfig user / cluster that only the SDK handles.
SDK_USER_KEYS = ("exec", "auth-provider")
SDK_CLUSTER_KEYS = ("proxy-url",)


class Transport(Protocol):
    """One HTTP request to the API server; returns (status, body bytes).

    Network and TLS failures raise; HTTP error statuses are returned.
    """

    kind: str

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | None,
        headers: dict[str, str],
        body: Any,
        timeout: float,
    ) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class Target:
    """What one context resolves to."""

    context: str
    cluster: dict[str, Any]
    user: dict[str, Any]
    base: Path  # where the cluster entry's relative paths start
    user_base: Path

    @property
    def needs_sdk(self) -> bool:
        return any(k in self.user for k in SDK_USER_KEYS) or any(
            k in self.cluster for k in SDK_CLUSTER_KEYS
        )


def resolve(config: Kubeconfig, context: str = "") -> Target:
    name = context or config.current_context
    if not name:
        raise KubeconfigError("the kubeconfig has no current-context; name one (KUBE_CONTEXT)")
    if name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise KubeconfigError(f"context {name!r} not found in the kubeconfig (contexts: {known})")
    ctx = config.contexts[name]
    cluster_name, user_name = ctx.get("cluster", ""), ctx.get("user", "")
    if cluster_name not in config.clusters:
        raise KubeconfigError(f"context {name!r} names cluster {cluster_name!r}, which is not defined")
    cluster, base = config.clusters[cluster_name]
    user, user_base = config.users.get(user_name, ({}, base))
    if not cluster.get("server"):
        raise KubeconfigError(f"cluster {cluster_name!r} has no server URL")
    return Target(name, cluster, user, base, user_base)


# ---- the direct transport ---------------------------------------------------------------


def _file(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _pem(entry: dict[str, Any], base: Path, key: str) -> bytes | None:
    """`<key>-data` (base64) or the file `<key>` as bytes; None when neither is set."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return _file(base, str(entry[key])).read_bytes()
    return None


def ssl_context(target: Target) -> ssl.SSLContext:
    """Trust and client identity as the kubeconfig states them (never weaker)."""
    cluster, user = target.cluster, target.user
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no trust store: nothing is verified
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        ca = _pem(cluster, target.base, "certificate-authority")
        # With a CA, only that CA (as kubectl); without, the system's trust store.
        context = ssl.create_default_context(cadata=ca.decode() if ca is not None else None)
    cert = _pem(user, target.user_base, "client-certificate")
    key = _pem(user, target.user_base, "client-key")
    if cert is not None and key is not None:
        # load_cert_chain reads files only: a private folder, deleted once loaded.
        with tempfile.TemporaryDirectory(prefix="todo-kube-") as folder:
            cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
            for path, data in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            context.load_cert_chain(str(cert_path), str(key_path))
    return context


def auth_headers(target: Target) -> dict[str, str]:
    user = target.user
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _file(target.user_base, str(user["tokenFile"])).read_text().strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    if user.get("username") and user.get("password"):
        pair = f"{user['username']}:{user['password']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


class DirectTransport:
    """A urllib3 pool to the server, with the kubeconfig's TLS and credentials."""

    kind = "direct"

    def __init__(self, target: Target, pool_size: int = 8) -> None:
        import urllib3

        self.server = str(target.cluster["server"]).rstrip("/")
        self._auth = auth_headers(target)
        pool_kw: dict[str, Any] = {"maxsize": pool_size, "retries": False}
        if self.server.startswith("https://"):
            pool_kw["ssl_context"] = ssl_context(target)
            if target.cluster.get("tls-server-name"):
                pool_kw["server_hostname"] = str(target.cluster["tls-server-name"])
            if target.cluster.get("insecure-skip-tls-verify"):
                pool_kw["cert_reqs"] = "CERT_NONE"
                pool_kw["assert_hostname"] = False
        self._pool = urllib3.PoolManager(num_pools=2, **pool_kw)
        self._urllib3 = urllib3

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | None,
        headers: dict[str, str],
        body: Any,
        timeout: float,
    ) -> tuple[int, bytes]:
        url = self.server + path + (f"?{urlencode(list(query))}" if query else "")
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        response = self._pool.request(
            method, url, body=body, headers={**headers, **self._auth},
            timeout=self._urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            redirect=False, preload_content=True,
        )
        return response.status, response.data


# ---- the SDK adapter ----------------------------------------------------------------------


class SdkTransport:
    """The kubernetes SDK's ApiClient: plugins (exec, auth-provider) and proxies."""

    kind = "sdk"

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    @classmethod
    def for_context(cls, context: str, paths: Sequence[Path] | None = None) -> SdkTransport:
        return cls(sdk_client(context, paths))

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | None,
        headers: dict[str, str],
        body: Any,
        timeout: float,
    ) -> tuple[int, bytes]:
        method_, url, hdrs, body_, _ = self.api.param_serialize(
            method, path, query_params=list(query) if query else None,
            header_params=dict(headers), body=body, auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(
                method_, url, header_params=hdrs, body=body_, _request_timeout=timeout
            )
        except Exception as exc:  # ApiException carries an HTTP status and body
            status = getattr(exc, "status", 0) or 0
            if not status:
                raise
            data = getattr(exc, "body", b"") or b""
            return status, data if isinstance(data, bytes) else str(data).encode()
        data = response.read()
        return response.status, data if isinstance(data, bytes) else str(data or "").encode()


def sdk_client(context: str, paths: Sequence[Path] | None = None) -> Any:
    """A new kubernetes.client.ApiClient for `context` ('' = current), from the same
    kubeconfig files (the SDK merges a path list as kubectl does)."""
    from kubernetes import config

    files = os.pathsep.join(str(p) for p in (paths or kubeconfig_paths()))
    return config.new_client_from_config(config_file=files, context=context or None)


def connect(context: str = "", environ: Mapping[str, str] | None = None) -> Transport:
    """The cheapest transport that is correct for this context's user."""
    paths = kubeconfig_paths(environ)
    target = resolve(load_kubeconfig(paths), context)
    if target.needs_sdk:
        return SdkTransport.for_context(target.context, paths)
    return DirectTransport(target)
