"""The one settings object every task reads.

Values are merged from four places, lowest priority first: the defaults below,
secrets generated on first use (kept in the gitignored `.env.secrets`), the
project's `.env`, and the process environment. The result is validated once;
every problem is reported together, and secrets are never shown.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from todo_deploy.config import ingress_forms as _ingress
from todo_deploy.config import profiles, registry_auth
from todo_deploy.config.connection_budget import Budget
from todo_deploy.config.registry_auth import AuthFileError

if TYPE_CHECKING:
    from todo_deploy.config.registry_auth import Login

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE_NAME = ".env.secrets"
GENERATED_SECRETS = ("AUTH_SECRET", "SESSION_SECRET", "PROXY_SECRET", "POSTGRES_PASSWORD")

# The apps refuse shorter signing keys (todo_api and todo_web settings; a unit
# test keeps the three in step), so a short one must stop `inv config`, not a rollout.
APP_SECRET_MIN_LENGTH = 16
_SENSITIVE_QUERY = re.compile(r"key|token|secret|password|passwd|pwd|signature|sig", re.IGNORECASE)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MEMORY = re.compile(r"^(\d+)\s*([mMgG][bB]?|[mM]i|[gG]i)?$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: lowercase letters, digits and '-', "
            "start and end with a letter or digit, at most 63 characters"
        )
    return value


def _memory(value: str) -> str:
    match = _MEMORY.match(value.strip())
    if not match:
        raise ValueError("must be a size such as 4096 (MiB), 4096m or 4g")
    return value.strip()


def _optional_url(value: str) -> str:
    if value and not (urlparse(value).scheme and urlparse(value).netloc):
        raise ValueError("must be a URL such as https://api.example.com/v1")
    return value


def _database_url(value: str) -> str:
    if not value:
        return value
    parsed = urlparse(value)
    if not parsed.scheme.startswith("postgres") or not parsed.hostname:
        raise ValueError(
            "must be a PostgreSQL URL such as postgresql://user:password@host:5432/todo"
        )
    return value


def _app_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < APP_SECRET_MIN_LENGTH:
        raise ValueError(
            f"must be at least {APP_SECRET_MIN_LENGTH} characters (the apps refuse shorter); "
            "leave it empty to have one generated"
        )
    return value


def url_credentials(value: str) -> list[str]:
    """The secret parts of a URL: the user info's password (or lone user) and sensitive
    query values (`?key=…`, `?token=…`)."""
    try:
        parsed = urlparse(value)
    except ValueError:
        return []
    found = [part for part in (parsed.password or parsed.username,) if part]
    found += [v for k, v in parse_qsl(parsed.query) if v and _SENSITIVE_QUERY.search(k)]
    return found


def mask_url(value: str) -> str:
    """`value` with any credentials in it replaced by ***; other URLs unchanged."""
    if not url_credentials(value):
        return value
    parsed = urlparse(value)
    netloc = parsed.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [(k, "***" if _SENSITIVE_QUERY.search(k) else v) for k, v in parse_qsl(parsed.query)],
        safe="*",
    )
    return urlunparse(parsed._replace(netloc=netloc, query=query))


DnsLabel = Annotated[str, AfterValidator(_dns_label)]


def _ingress_tls(value: str) -> str:
    _ingress.parse_tls(value)
    return value.strip()


class Source(StrEnum):
    DEFAULT = "default"
    GENERATED = "generated"
    DOTENV = ".env"
    ENVIRONMENT = "environment"


class Settings(BaseModel):
    """Every knob of the workflow. Field names are the lower-case .env keys."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # The cluster
    cluster_provider: Literal["minikube", "kind", "docker-desktop", "existing"] = "minikube"
    kube_context: str = ""
    minikube_profile: DnsLabel = "todo-chatbot"
    minikube_driver: str = "docker"
    minikube_cpus: int = Field(default=2, ge=2, le=64)
    minikube_memory: Annotated[str, AfterValidator(_memory)] = "4096"
    minikube_addons: str = ""
    kind_cluster_name: DnsLabel = "todo-chatbot"

    # The release
    namespace: DnsLabel = "todo"
    release_name: Annotated[str, AfterValidator(_dns_label), Field(max_length=53)] = (
        "todo-chatbot"
    )
    backend_replicas: int = Field(default=2, ge=1, le=20)
    frontend_replicas: int = Field(default=2, ge=1, le=20)
    frontend_service_type: Literal["LoadBalancer", "NodePort", "ClusterIP"] = "LoadBalancer"
    deploy_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    # Retries of a failed migration Job (the chart's migration.backoffLimit). Each retry
    # waits the Job controller's back-off (10 s, 20 s, 40 s...): 0 fails at the first error.
    migration_backoff_limit: int = Field(default=3, ge=0, le=10)

    # The Ingress (issue 23, item 3; todo_deploy/chart/ingress.py): INGRESS_HOST empty = none.
    # INGRESS_TLS: none | self-signed | secret:NAME | cert-manager:ISSUER.
    ingress_host: Annotated[str, AfterValidator(_ingress.check_host)] = ""
    ingress_class: Annotated[str, AfterValidator(_ingress.check_class)] = "nginx"
    ingress_tls: Annotated[str, AfterValidator(_ingress_tls)] = "self-signed"

    # Images
    # The defaults are the images CI runs on a first run (pulled, never preloaded).
    python_base_image: str = Field(default="python:3.11-slim", min_length=1)
    postgres_image: str = Field(default="postgres:15", min_length=1)
    image_registry: str = ""
    backend_image_budget_mb: int = Field(default=120, gt=0)
    frontend_image_budget_mb: int = Field(default=60, gt=0)
    # After a build that built something, older tags of our own repositories beyond the
    # newest N are removed (`inv prune`); 0 keeps them all.
    keep_image_tags: int = Field(default=3, ge=0, le=1000)
    # A registry that needs credentials (issue 23: 2): `inv build --push` logs in with them
    # and the deploy makes the pull Secret <release>-registry from them (never in YAML).
    registry_username: str = ""
    registry_password: SecretStr = SecretStr("")
    # ... or an existing docker config (`docker login`'s config.json): its entry for
    # IMAGE_REGISTRY's host only (todo_deploy/config/registry_auth.py). Relative to the settings root.
    registry_auth_file: str = ""

    # The database
    database_mode: Literal["bundled", "external"] = "bundled"
    database_url: SecretStr = SecretStr("")
    postgres_password: SecretStr = SecretStr("")
    # Each backend process's two pools (the backend's DB_POOL_SIZE), and the connections the
    # database allows: the bundled PostgreSQL is started with max_connections set to it; for
    # an external one, state its limit (connection_budget.py checks that the release fits).
    db_pool_size: int = Field(default=10, ge=1, le=100)
    database_max_connections: int = Field(default=100, ge=10, le=100_000)
    # How often an idle backend pod's /ready asks the database itself (the backend's
    # DB_PROBE_SECONDS); above 300 lets a serverless database (Neon) scale to zero.
    db_probe_seconds: int = Field(default=60, ge=5, le=86_400)

    # The app's secrets
    auth_secret: SecretStr = SecretStr("")
    session_secret: SecretStr = SecretStr("")
    # The frontend vouches with it for the client address it passes on (X-Proxy-Secret):
    # the backend believes X-Forwarded-For only from a request that carries it.
    proxy_secret: SecretStr = SecretStr("")

    # The assistant
    llm_provider: Literal["auto", "openai", "offline"] = "auto"
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: Annotated[str, AfterValidator(_optional_url)] = ""
    llm_model: str = "gpt-4o-mini"

    # AIOps
    kagent_namespace: DnsLabel = "kagent"
    aiops_timeout_seconds: int = Field(default=120, ge=5, le=3600)

    # Profiles (issue 23, item 1; todo_deploy/config/profiles.py and values_files.py): chart values
    # files layered over the workflow's values, comma-separated, relative to the settings root
    # (load_settings sets it; the project for Settings made by hand).
    values_files: str = ""
    _root: Path = PrivateAttr(default=PROJECT_ROOT)

    @property
    def values_entries(self) -> list[tuple[str, Path]]:
        """Each VALUES_FILES entry as written, and its path."""
        return [(part.strip(), self._root / part.strip())
                for part in self.values_files.split(",") if part.strip()]

    @property
    def values_paths(self) -> list[Path]:
        return [path for _, path in self.values_entries]

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: SecretStr) -> SecretStr:
        _database_url(value.get_secret_value())
        return value

    @field_validator("auth_secret", "session_secret", "proxy_secret")
    @classmethod
    def _long_enough_for_the_apps(cls, value: SecretStr) -> SecretStr:
        return _app_secret(value) if value.get_secret_value() else value

    @model_validator(mode="after")
    def _database_consistent(self) -> Settings:
        if self.database_mode == "external" and not self.database_url.get_secret_value():
            raise ValueError("DATABASE_MODE=external needs DATABASE_URL")
        return self

    @model_validator(mode="after")
    def _registry_credentials_complete(self) -> Settings:
        problem = registry_credentials_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def registry_host(self) -> str:
        """The registry part of IMAGE_REGISTRY (host[:port]), what `docker login` takes."""
        return self.image_registry.strip().strip("/").split("/", 1)[0]

    @property
    def registry_credentials(self) -> bool:
        """Credentials are set (user and password, or a docker config file)."""
        return bool(self.registry_auth_file.strip() or (
            self.registry_username and self.registry_password.get_secret_value()))

    def registry_login(self) -> Login | None:
        """The registry credentials, from whichever settings hold them; None without any.
        Raises registry_auth.AuthFileError when REGISTRY_AUTH_FILE cannot give them."""
        written = self.registry_auth_file.strip()
        if written:
            path = self._root / Path(written).expanduser()
            return registry_auth.read_auth_file(path, self.registry_host, written)
        if not self.registry_credentials:
            return None
        return registry_auth.Login(self.registry_host, self.registry_username,
                                   self.registry_password.get_secret_value(),
                                   registry_auth.USER_AND_PASSWORD)

    @model_validator(mode="after")
    def _connections_fit(self) -> Settings:
        budget = Budget(self.backend_replicas, self.db_pool_size, self.database_max_connections)
        problem = budget.problem()
        if problem:
            raise ValueError(problem)
        return self

    @property
    def memory_mb(self) -> int:
        match = _MEMORY.match(self.minikube_memory)
        assert match  # validated above
        number, unit = int(match.group(1)), (match.group(2) or "m").lower()
        return number * 1024 if unit.startswith("g") else number

    @property
    def effective_llm_provider(self) -> Literal["openai", "offline"]:
        if self.llm_provider == "auto":
            return "openai" if self.openai_api_key.get_secret_value() else "offline"
        return self.llm_provider

    @property
    def context_name(self) -> str:
        """The kubeconfig context the workflow talks to ('' = the current one)."""
        if self.kube_context:
            return self.kube_context
        return {
            "minikube": self.minikube_profile,
            "kind": f"kind-{self.kind_cluster_name}",
            "docker-desktop": "docker-desktop",
            "existing": "",
        }[self.cluster_provider]

    def secret_values(self) -> list[str]:
        """Every non-empty secret value, for scrubbing output."""
        values = [
            getattr(self, name).get_secret_value()
            for name, info in type(self).model_fields.items()
            if info.annotation is SecretStr
        ]
        values += url_credentials(self.openai_base_url)
        if self.registry_credentials:
            try:
                login = self.registry_login()
            except AuthFileError:
                login = None
            if login is not None:  # the password, and as the pull Secret's "auth" holds it
                values += [login.password, login.auth]
        return [v for v in values if v]


def registry_credentials_problem(settings: Settings) -> str:
    """Why the registry settings cannot work together; '' when they can."""
    user, password = settings.registry_username, settings.registry_password.get_secret_value()
    auth_file = settings.registry_auth_file.strip()
    if auth_file and (user or password):
        return ("set REGISTRY_AUTH_FILE or REGISTRY_USERNAME/REGISTRY_PASSWORD, not both "
                "(both name the registry's credentials)")
    if auth_file and not settings.image_registry.strip():
        return "REGISTRY_AUTH_FILE needs IMAGE_REGISTRY (the registry whose entry it holds)"
    if bool(user) != bool(password):
        return ("REGISTRY_USERNAME and REGISTRY_PASSWORD go together: set both (a registry "
                "with credentials) or neither")
    if user and not settings.image_registry.strip():
        return "REGISTRY_USERNAME/REGISTRY_PASSWORD need IMAGE_REGISTRY (the registry they open)"
    return ""


SECRET_KEYS = frozenset(
    name.upper()
    for name, info in Settings.model_fields.items()
    if info.annotation is SecretStr
)


class SettingsError(Exception):
    """Invalid settings: one line per bad key, secrets masked."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Invalid settings (fix them in .env or the environment):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, Source | str] = field(default_factory=dict)
    root: Path = PROJECT_ROOT
    profile: str = ""  # the active profile: its `.env.NAME` is layered over `.env`

    @property
    def state_dir(self) -> Path:
        return self.root / ".state"


def mask(key: str, value: Any) -> str:
    """A printable form of a value: secrets become '*** (set)' / '(empty)'."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if key.upper() in SECRET_KEYS:
        return "***" if text else "(empty)"
    return mask_url(text)


def _read_secrets_file(path: Path) -> dict[str, str]:
    return {k: v for k, v in dotenv_values(path).items() if v} if path.exists() else {}


def _generate_missing_secrets(path: Path, merged: dict[str, str]) -> dict[str, str]:
    """Create (once) each generated secret that no source sets, and keep it in `path`."""
    kept = _read_secrets_file(path)
    missing = [key for key in GENERATED_SECRETS if not merged.get(key) and not kept.get(key)]
    if missing:
        kept.update({key: secrets.token_urlsafe(32) for key in missing})
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(
            "# Generated by todo_deploy on first use. Keep it: the database was\n"
            "# initialised with POSTGRES_PASSWORD. Never commit this file.\n"
            + "".join(f"{key}={value}\n" for key, value in sorted(kept.items()))
        )
        path.chmod(0o600)
    return kept


class ProfileError(SettingsError):
    """A profile that does not exist: one line naming its file and the profiles that do."""

    def __init__(self, line: str) -> None:
        self.problems = [line]
        Exception.__init__(self, line)


def _read_dotenv(path: Path, keys: set[str]) -> tuple[dict[str, str], list[str]]:
    """The settings a .env-style file sets, and a problem line per unknown key in it."""
    in_file = {k.upper(): v for k, v in dotenv_values(path).items() if v is not None}
    unknown = [unknown_key_problem(k, keys, path.name) for k in in_file if k not in keys]
    return {k: v for k, v in in_file.items() if k in keys}, unknown


def load_settings(
    root: Path | None = None, environ: dict[str, str] | None = None, profile: str | None = None
) -> LoadedSettings:
    """Merge defaults, generated secrets, .env, the profile's .env.NAME and the
    environment; validate once.

    The settings root (where `.env`, `.env.secrets` and `.state/` live) is `root`,
    else TODO_DEPLOY_ROOT from the environment (tests, CI), else the project. The
    profile is `profile`, else TODO_PROFILE from the environment ('' = none).
    """
    environ = dict(os.environ if environ is None else environ)
    if root is None:
        root = Path(environ["TODO_DEPLOY_ROOT"]) if environ.get("TODO_DEPLOY_ROOT") else PROJECT_ROOT
    profile = (environ.get(profiles.PROFILE_ENV, "") if profile is None else profile).strip()
    if profile and (missing := profiles.name_problem(profile, root)):
        raise ProfileError(missing)
    keys = {name.upper() for name in Settings.model_fields}
    dotenv, unknown = _read_dotenv(root / ".env", keys)
    layers: list[tuple[Source | str, dict[str, str]]] = [(Source.DOTENV, dotenv)]
    if profile:
        in_profile, unknown_there = _read_dotenv(root / profiles.profile_file(profile), keys)
        layers.append((profiles.profile_file(profile), in_profile))
        unknown += unknown_there
    env = {k: v for k, v in environ.items() if k in keys}
    layers.append((Source.ENVIRONMENT, env))

    merged: dict[str, str] = {}
    sources: dict[str, Source | str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            merged[key], sources[key] = value, source
    for key, value in _generate_missing_secrets(root / SECRETS_FILE_NAME, merged).items():
        if not merged.get(key):
            merged[key], sources[key] = value, Source.GENERATED

    try:
        settings = Settings.model_validate({k.lower(): v for k, v in merged.items()})
    except ValidationError as exc:
        raise SettingsError(unknown + _describe(exc, merged)) from None
    if unknown:
        raise SettingsError(unknown)
    settings._root = root
    _check_registry_auth_file(settings)
    for name in Settings.model_fields:
        sources.setdefault(name.upper(), Source.DEFAULT)
    return LoadedSettings(settings=settings, sources=sources, root=root, profile=profile)


def _check_registry_auth_file(settings: Settings) -> None:
    """REGISTRY_AUTH_FILE is read once the settings root is known (it is relative to it)."""
    if not settings.registry_auth_file.strip():
        return

    try:
        settings.registry_login()
    except AuthFileError as exc:
        raise SettingsError([str(exc)]) from None



def unknown_key_problem(key: str, known: set[str], file: str = ".env") -> str:
    """A line for a .env key no setting has, naming the closest known key when one is near."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}?" if close else "see .env.example for every setting"
    return f"{key} (in {file}): unknown setting; {hint}"


def _describe(exc: ValidationError, merged: dict[str, str]) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(message)
            continue
        key = str(error["loc"][0]).upper()
        shown = mask(key, merged.get(key, ""))
        problems.append(f"{key}={shown!r}: {message}")
    return problems


def effective_rows(loaded: LoadedSettings) -> list[tuple[str, str, str]]:
    """(KEY, printable value, source) for every setting, for `inv config`."""
    settings = loaded.settings
    return [
        (name.upper(), mask(name, getattr(settings, name)), str(loaded.sources[name.upper()]))
        for name in Settings.model_fields
    ]
