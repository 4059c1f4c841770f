"""Runtime configuration, read once from the environment."""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from todo_api.client_address import NetworkList, OptionalSecret


def normalize_database_url(url: str) -> str:
    """Point PostgreSQL URLs at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    port: int = Field(default=8000, ge=1, le=65535)
    host: str = "0.0.0.0"
    database_url: str = "sqlite:///./todo.db"
    auth_secret: SecretStr = Field(min_length=16)
    token_ttl_minutes: int = Field(default=1440, ge=1)
    llm_provider: Literal["auto", "openai", "offline"] = "auto"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=30, gt=0)
    drain_seconds: float = Field(default=5, ge=0)
    # Database connections of this process. Requests wait at most DB_POOL_TIMEOUT_SECONDS
    # for one, then get 503 + Retry-After (the service refuses fast when saturated).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_timeout_seconds: float = Field(default=2, gt=0, le=30)
    # /ready probes the database itself at most this often while everything is well (the
    # requests' own queries report in between). Neon scales to zero after 5 minutes
    # without a query: above 300 lets it (an idle pod then notices a dead database later).
    db_probe_seconds: float = Field(default=60, ge=5, le=86_400)
    # Chat and per-user quotas. Chats in flight in this process: at most CHAT_PER_USER_IN_FLIGHT
    # per user and CHAT_MAX_IN_FLIGHT in all (unset: half of DB_POOL_SIZE, at least 1; each
    # chat takes a pooled connection for its tool calls), past that 429 + Retry-After. Every
    # pooled PostgreSQL connection waits at most DB_LOCK_TIMEOUT_MS for a lock, runs a statement
    # at most DB_STATEMENT_TIMEOUT_MS and sits idle in a transaction at most
    # DB_IDLE_IN_TRANSACTION_TIMEOUT_MS (0: no limit). Past a quota (tasks per user,
    # conversations per user, messages per conversation) the request is refused with 409.
    chat_per_user_in_flight: int = Field(default=2, ge=1, le=100)
    chat_max_in_flight: int | None = Field(default=None, ge=1, le=1_000)
    db_lock_timeout_ms: int = Field(default=2_000, ge=0, le=600_000)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0, le=3_600_000)
    db_idle_in_transaction_timeout_ms: int = Field(default=10_000, ge=0, le=3_600_000)
    max_tasks_per_user: int = Field(default=10_000, ge=1, le=10_000_000)
    max_conversations_per_user: int = Field(default=1_000, ge=1, le=1_000_000)
    max_messages_per_conversation: int = Field(default=1_000, ge=2, le=1_000_000)
    # argon2id, sized to the pod's memory limit: each hash in flight holds
    # PASSWORD_HASH_MEMORY_KIB; at most PASSWORD_HASH_CONCURRENCY run at once (OWASP's
    # minimum is m=19 MiB, t=2, p=1).
    password_hash_memory_kib: int = Field(default=19_456, ge=8_192, le=262_144)
    password_hash_time_cost: int = Field(default=2, ge=1, le=10)
    password_hash_concurrency: int = Field(default=2, ge=1, le=16)
    password_hash_wait_seconds: float = Field(default=5, gt=0, le=60)
    # Trusted proxies and sign-in throttling (client_address.py, throttle.py). The client's
    # address comes from X-Forwarded-For only when the request carries X-Proxy-Secret equal
    # to PROXY_SECRET (the frontend sends it) or the TCP peer is in TRUSTED_PROXIES (IPs /
    # CIDRs); otherwise it is the peer's. Throttles are shared by the replicas through the
    # database and count an attempt before checking it: within AUTH_WINDOW_SECONDS at most
    # AUTH_FAILURES_PER_USER failed sign-ins per username from one address and
    # AUTH_FAILURES_PER_ADDRESS per address; per hour, ..._ALL_ADDRESSES per username from all
    # addresses; sign-ups per address per window and per hour. Past any: 429 + Retry-After.
    # Left unset, the two hourly limits are 100 and 50, or the matching tighter limit when
    # that is larger (raising it for a crowd behind one NAT raises them too).
    trusted_proxies: NetworkList = "127.0.0.1,::1"
    proxy_secret: OptionalSecret = None
    auth_window_seconds: int = Field(default=300, ge=1)
    auth_failures_per_user: int = Field(default=5, ge=1)
    auth_failures_per_user_all_addresses: int | None = Field(default=None, ge=1)
    auth_failures_per_address: int = Field(default=30, ge=1)
    signups_per_address: int = Field(default=20, ge=1)
    signups_per_address_per_hour: int | None = Field(default=None, ge=1)
    # HTTP limits: request head (431), body (413), slow clients (408), connections (503).
    max_header_bytes: int = Field(default=32_768, ge=1_024)
    max_body_bytes: int = Field(default=65_536, ge=1_024)
    client_timeout_seconds: float = Field(default=10, gt=0)
    max_connections: int = Field(default=1_000, ge=8)
    # Connection slots. A body must be complete within CLIENT_TIMEOUT_SECONDS of its first
    # read (the whole body, not per chunk) and arrive at MIN_BODY_BYTES_PER_SECOND on average
    # after 2 s (0: no minimum). At most MAX_CONNECTIONS_PER_CLIENT open connections per
    # client address; past it that address's requests get 503 + Retry-After and its surplus
    # does not count towards MAX_CONNECTIONS. The backend's clients are the frontend pods,
    # so unset means MAX_CONNECTIONS: one frontend may use every slot.
    min_body_bytes_per_second: float = Field(default=1_024, ge=0)
    # At most MAX_REQUESTS_RUNNING requests in the app at once; the rest wait their turn (the
    # probes never do), so a burst cannot make one turn of the event loop long enough to
    # delay the liveness answer (measured: 64 → /healthz 0.48 s under the 200-request burst, 32 → 0.25 s).
    max_requests_running: int = Field(default=32, ge=1)
    max_connections_per_client: int | None = Field(default=None, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalize_database_url(value.strip())

    @field_validator("log_level", "llm_provider", mode="before")
    @classmethod
    def _case(cls, value: object) -> object:
        if isinstance(value, str):
            return value.upper() if value.lower() in {"debug", "info", "warning", "error", "critical"} else value.lower()
        return value

    @cached_property
    def agent_provider(self) -> Literal["openai", "offline"]:
        if self.llm_provider == "auto":
            return "openai" if self.openai_api_key and self.openai_api_key.get_secret_value() else "offline"
        return self.llm_provider

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad variable, never echoing its value."""
    parts: list[str] = []
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        if err["type"] == "missing":
            reason = "is required but not set"
        elif err["type"] in ("too_short", "string_too_short"):
            reason = f"must be at least {err.get('ctx', {}).get('min_length', '?')} characters long"
        else:
            reason = "is invalid: " + err["msg"].lower()
        parts.append(f"{name} {reason}")
    return "Invalid configuration: " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Load settings or exit with code 2 and a message naming the variable(s)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        print(describe_errors(exc), file=sys.stderr)
        raise SystemExit(2) from None
