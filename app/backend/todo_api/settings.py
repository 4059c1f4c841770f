"""Runtime configuration, read once from the environment."""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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


def load_settings(**overrides: object) -> Settings:
    """Load settings or exit with code 2 and a message naming the variable(s)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(describe_errors(exc), file=sys.stderr)
        raise SystemExit(2) from None
