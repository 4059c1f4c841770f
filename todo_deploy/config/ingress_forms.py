"""INGRESS_HOST, INGRESS_CLASS and INGRESS_TLS: the forms the settings accept (issue 23: 3).
What the workflow does with them is todo_deploy/chart/ingress.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

TLS_MODES = ("none", "self-signed", "secret", "cert-manager")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Tls:
    mode: str  # one of TLS_MODES
    name: str = ""  # the Secret (secret:) or the ClusterIssuer (cert-manager:)


def parse_tls(value: str) -> Tls:
    """INGRESS_TLS -> Tls; ValueError with the accepted forms."""
    mode, _, name = value.strip().partition(":")
    forms = "none, self-signed, secret:NAME or cert-manager:ISSUER"
    if mode not in TLS_MODES:
        raise ValueError(f"must be {forms}")
    needs_name = mode in ("secret", "cert-manager")
    if needs_name and not _NAME.match(name):
        raise ValueError(f"{mode}: needs a resource name after the colon ({forms})")
    if not needs_name and name:
        raise ValueError(f"{mode} takes no name ({forms})")
    return Tls(mode, name)


def check_host(value: str) -> str:
    """INGRESS_HOST: '' or a lower-case DNS name (no scheme, port or path)."""
    if value and (len(value) > 253 or not _HOST.match(value)):
        raise ValueError("must be a host name such as todo.example.com (lower case, no "
                         "scheme, port or path), or empty for no Ingress")
    return value


def check_class(value: str) -> str:
    """INGRESS_CLASS: '' (the cluster's default class) or an IngressClass name."""
    if value and (len(value) > 253 or not _NAME.match(value)):
        raise ValueError("must be an IngressClass name (lower case letters, digits, '-' and "
                         "'.', such as nginx or webapprouting.kubernetes.azure.com), or empty "
                         "for the cluster's default class")
    return value
