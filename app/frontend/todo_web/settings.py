"""Run-time settings, read once from the environment and validated."""

from __future__ import annotations

import sys
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .forwarded import Network, parse_networks


class Settings(BaseSettings):
    """Every knob the frontend has. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    backend_url: str = Field(default="http://localhost:8000", description="Backend base URL")
    session_secret: SecretStr = Field(description="Key that signs the session cookie")
    host: str = Field(default="0.0.0.0", description="Interface to listen on")
    port: int = Field(default=3000, ge=1, le=65535)
    cookie_secure: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="Secure cookie flag: auto = only when the request came over https",
    )
    drain_seconds: float = Field(default=5.0, ge=0, le=300)
    backend_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # How long a connect to the backend is tried again before the browser hears "unreachable"
    # (backend_transport.py): a new pod is routed to a moment after it is ready.
    backend_connect_budget_seconds: float = Field(default=3.0, ge=0, le=30)
    session_max_age_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    log_level: str = Field(default="info")
    # HTTP limits: request head (431), body (413), slow clients (408), open connections (503).
    max_header_bytes: int = Field(default=32_768, ge=1_024)
    max_body_bytes: int = Field(default=65_536, ge=1_024)
    client_timeout_seconds: float = Field(default=10, gt=0)
    max_connections: int = Field(default=1_000, ge=8)
    # Connection slots. A body must be complete within CLIENT_TIMEOUT_SECONDS of its first
    # read (the whole body, not per chunk) and arrive at MIN_BODY_BYTES_PER_SECOND on average
    # after 2 s (0: no minimum). At most MAX_CONNECTIONS_PER_CLIENT open connections per
    # client address (a browser opens ~6); past it that address's requests get 503 +
    # Retry-After and its surplus does not count towards MAX_CONNECTIONS. The address is the
    # TCP peer's: behind a proxy that hides it, raise this.
    min_body_bytes_per_second: float = Field(default=1_024, ge=0)
    # At most MAX_REQUESTS_RUNNING requests in the app at once; the rest wait their turn (the
    # probes never do), so a burst cannot make one turn of the event loop long enough to
    # delay the liveness answer (measured: 64 → /healthz 0.48 s under the 200-request burst, 32 → 0.25 s).
    max_requests_running: int = Field(default=32, ge=1)
    max_connections_per_client: int = Field(default=64, ge=1)
    # Whose forwarded headers to believe (comma-separated IPs/CIDRs); empty = nobody's.
    trusted_proxies: str = Field(default="")
    # Sent to the backend as X-Proxy-Secret so it believes our X-Forwarded-For.
    proxy_secret: SecretStr | None = Field(default=None)
    # A backend answer relayed to the browser larger than this is refused (502) or cut off.
    max_proxy_body_bytes: int = Field(default=4 * 1024 * 1024, ge=65_536)

    @field_validator("backend_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("BACKEND_URL must start with http:// or https://")
        return value

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("SESSION_SECRET must be at least 16 characters long")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("proxy_secret", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("proxy_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("PROXY_SECRET must be at least 16 characters long when set")
        return value

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @field_validator("cookie_secure", mode="before")
    @classmethod
    def _normalise_bool(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "yes", "on", "true"}:
                return "true"
            if lowered in {"0", "no", "off", "false"}:
                return "false"
            return lowered
        if isinstance(value, bool):
            return "true" if value else "false"
        return value


def describe_errors(error: ValidationError) -> list[str]:
    """Readable one-liners naming the variable, never echoing its value."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        if item["type"] == "missing":
            lines.append(f"{name} is required but not set")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{name} is invalid: {message}")
    return lines


def load_settings() -> Settings:
    """Load settings or exit with code 2 and a message naming what is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        for line in describe_errors(error):
            print(f"todo_web: configuration error: {line}", file=sys.stderr)
        raise SystemExit(2) from None
