"""Registry credentials (issue 23: 2): REGISTRY_USERNAME/REGISTRY_PASSWORD, or the entry for
IMAGE_REGISTRY's host in an existing docker config (REGISTRY_AUTH_FILE, e.g. the
`~/.docker/config.json` that `docker login` wrote).

Only that one entry is used, for the push's login and the pull Secret: the other
registries a config file may hold never reach the cluster. A config whose credentials
live in a credential helper (`credsStore`, `credHelpers`: Docker Desktop's keychain) has
none to give, and Kubernetes cannot run the helper; that is said, as the Kubernetes docs
say it ("Pull an Image from a Private Registry").
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTH_FILE = "REGISTRY_AUTH_FILE"
USER_AND_PASSWORD = "REGISTRY_USERNAME/REGISTRY_PASSWORD"


class AuthFileError(ValueError):
    """REGISTRY_AUTH_FILE cannot give credentials for the registry: why, and what to do."""


@dataclass(frozen=True)
class Login:
    """Credentials for one registry host, and the settings they came from."""

    host: str
    username: str
    password: str
    source: str  # USER_AND_PASSWORD, or "REGISTRY_AUTH_FILE (<path as written>)"

    @property
    def auth(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def docker_config(self) -> str:
        """A pull Secret's .dockerconfigjson, as `kubectl create secret docker-registry`
        writes it: this host only."""
        entry = {"username": self.username, "password": self.password, "auth": self.auth}
        return json.dumps({"auths": {self.host: entry}}, sort_keys=True)


def _keys_for(host: str) -> list[str]:
    """The `auths` keys docker uses for a host: itself, with a scheme, and Docker Hub's
    historical index URL."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys.append("https://index.docker.io/v1/")
    return keys


def from_docker_config(text: str, host: str, written: str) -> Login:
    """The credentials for `host` in a docker config file's text. `written` names the file
    in messages (REGISTRY_AUTH_FILE as set)."""
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise AuthFileError(f"{AUTH_FILE}={written} is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise AuthFileError(f"{AUTH_FILE}={written} is not a docker config (no JSON object)")
    auths: dict[str, Any] = config["auths"] if isinstance(config.get("auths"), dict) else {}
    entry = next((auths[k] for k in _keys_for(host) if isinstance(auths.get(k), dict)), None)
    helper = (config.get("credHelpers") or {}).get(host) or config.get("credsStore")
    if entry is None or not (entry.get("auth") or entry.get("password")):
        if helper:
            raise AuthFileError(
                f"{AUTH_FILE}={written} keeps the credentials for {host} in the credential "
                f"helper docker-credential-{helper}, which the cluster cannot run: set "
                f"{USER_AND_PASSWORD} instead, or log in with a config without a helper "
                f"(`DOCKER_CONFIG=$(mktemp -d) docker login {host}`) and point {AUTH_FILE} "
                "at its config.json")
        if entry is not None and entry.get("identitytoken"):
            raise AuthFileError(
                f"{AUTH_FILE}={written} holds only an identity token for {host}, which the "
                f"kubelet does not send: set {USER_AND_PASSWORD} (a token as the password)")
        known = ", ".join(sorted(auths)) or "none"
        raise AuthFileError(
            f"{AUTH_FILE}={written} has no credentials for {host} (IMAGE_REGISTRY's host; "
            f"registries in it: {known}): `docker login {host}` with that config, or fix "
            "IMAGE_REGISTRY")
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthFileError(
                f"{AUTH_FILE}={written}: the 'auth' for {host} is not base64 of user:password"
            ) from None
    if not username or not password:
        raise AuthFileError(f"{AUTH_FILE}={written}: the entry for {host} lacks a user or password")
    return Login(host, username, password, f"{AUTH_FILE} ({written})")


def read_auth_file(path: Path, host: str, written: str) -> Login:
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuthFileError(f"{AUTH_FILE}={written} cannot be read ({exc.strerror or exc})") from None
    return from_docker_config(text, host, written)
