"""Settings read from the environment and `.env`, validated once at start-up."""

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console"]

# Public on purpose, so that production can recognise and refuse it.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production"  # noqa: S105
MIN_SECRET_KEY_BYTES = 32
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# The error type of our own checks: their message already reads as a sentence.
_SETTING_ERROR = "invalid_setting"
# An origin is scheme://host[:port]; "https://example.com/" (trailing slash) never matches.
_ORIGIN = re.compile(r"https?://[^/\s]+")
# What Starlette's TrustedHostMiddleware accepts: a host, "*.domain" or "*".
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[^*/\s]+")


_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A limit of `count` requests per `period_seconds`, written `N/minute`."""

    count: int
    period_seconds: int

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        """Parse `N/second`, `N/minute` or `N/hour`."""
        match = _RATE_PATTERN.match(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(
                "it must look like 5/minute: a positive count per second, minute or hour"
            )
        return cls(count=int(match.group(1)), period_seconds=_PERIOD_SECONDS[match.group(2)])


class SettingsError(Exception):
    """A setting is invalid; the message names it in one line per bad setting."""


def _setting_error(message: str) -> PydanticCustomError:
    """Build a validation error whose message follows "Setting NAME ..."."""
    return PydanticCustomError(_SETTING_ERROR, message)


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        # Keep values (the secret key, a database password) out of error messages.
        hide_input_in_errors=True,
        # Read once at start-up and shared by every request: nothing may change it after.
        frozen=True,
    )

    # Declared first: the secret key's check below reads it.
    environment: Environment = "development"
    # repr=False: a database or Redis URL may carry a password.
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/workshop_final", repr=False
    )
    redis_url: str = Field(default="redis://localhost:6379/0", repr=False)
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
    # NoDecode: read the raw string ourselves, so that both a JSON list and
    # "a,b,c" work (pydantic-settings would otherwise insist on JSON).
    cors_origins: Annotated[list[str], NoDecode] = []
    trusted_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "test"]

    # The database. The pool is fixed (max_overflow is always 0, see app/db.py):
    # overflow connections are opened and closed under load, which measured
    # slower than a steady pool of this size.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Fail a request after this wait for a pooled connection, rather than
    # queueing it for SQLAlchemy's default 30 s.
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # PostgreSQL cancels any statement running longer than this. Behind
    # PgBouncer it is not sent (PgBouncer refuses the start-up parameter):
    # set it on the server then, `ALTER DATABASE ... SET statement_timeout`.
    db_statement_timeout_ms: int = Field(default=5000, ge=1)
    # True when DATABASE_URL points at PgBouncer in transaction mode (or any
    # pooler that hands each transaction a different server connection): a
    # prepared statement cached on one server connection "does not exist" on
    # the next, so the engine caches none and names each one uniquely.
    db_behind_pgbouncer: bool = False
    # Statements slower than this are logged with their duration (0: every one).
    slow_query_ms: int = Field(default=200, ge=0)
    # Short: a load balancer asks often, and a hung database must read as "not ready".
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)
    # Bodies larger than this get 413 before the route reads them.
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)

    # Redis, the cache and the rate limit.
    # Short timeouts: a Redis that stops answering costs each request at most
    # this long before it takes its fallback (PostgreSQL, or no limit).
    redis_socket_timeout_seconds: float = Field(default=0.25, gt=0)
    redis_connect_timeout_seconds: float = Field(default=0.5, gt=0)
    # Idle pooled connections are PINGed before reuse after this long (0: never).
    redis_health_check_interval_seconds: int = Field(default=30, ge=0)
    # One worker makes at most this many Redis calls at once; more wait (up to
    # the socket timeout) for a free connection, then fall back as if Redis were
    # down. Redis connections are cheap; PostgreSQL's are not.
    redis_max_connections: int = Field(default=512, ge=1)
    # False: every user read goes to PostgreSQL.
    cache_enabled: bool = True
    # Also the longest a cached user can stay stale if an invalidation fails.
    # At most a day: far beyond any sane choice, and within Redis's expiry range.
    cache_ttl_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # The per-client limit on the API.
    rate_limit: Annotated[RateLimit, NoDecode] = RateLimit.parse("100/minute")
    # Password checks per client and per account (login, and a password change's
    # current_password): each guess costs an attacker one of these.
    login_rate_limit: Annotated[RateLimit, NoDecode] = RateLimit.parse("5/minute")
    # How long a session checked in PostgreSQL is trusted from Redis alone (the
    # token fast path). Longer saves queries (one per session per TTL); shorter
    # bounds how long a revocation whose marker could not be overwritten (Redis
    # unreachable from the revoking replica) is ignored by the other replicas.
    session_marker_ttl_seconds: int = Field(default=30, ge=1, le=3600)
    # Addresses or networks (10.0.0.0/8) of the reverse proxies in front of the
    # service. Only when the connection comes from one of these is the client
    # address read from X-Forwarded-For: anyone else could forge it.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []

    # Authentication. Bounded: a lifetime past datetime's range made every login
    # a 500. A day and a year are far beyond any sane choice, and well inside the range.
    access_token_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=1_209_600, ge=1, le=31_536_000)
    jwt_issuer: str = Field(default="workshop-user-service", min_length=1)
    jwt_audience: str = Field(default="workshop-api", min_length=1)
    # HMAC only: the service signs and verifies its own tokens with SECRET_KEY.
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    # Tolerated clock skew between replicas; small, because it lengthens every token's life.
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=60)
    # Argon2id cost: m=64 MiB, t=3, p=4 (pwdlib's default, ~100 ms per hash).
    # Changing them is safe: each user's hash is upgraded at their next login.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65_536, ge=64)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)
    # Password checks running at once (one per core fills the machine) and how
    # many more may wait; beyond that a login gets 503 at once. None waiting by
    # default: under a storm an accepted login costs one hash, not a queue of
    # them, and the refused ones retry after a second.
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    hash_queue_limit: int = Field(default=0, ge=0)

    @field_validator("environment", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("rate_limit", "login_rate_limit", mode="before")
    @classmethod
    def _parse_rate_limit(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return RateLimit.parse(value)
        except ValueError as exc:
            raise _setting_error(f"is not a rate: {exc}") from None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: object) -> object:
        items = cls._split_list(value)
        if not isinstance(items, list):
            return items
        try:
            return [ip_network(str(item)) for item in items]
        except ValueError:
            raise _setting_error(
                "has an entry that is not an address or a network: each must be "
                "like 10.0.0.1 or 10.0.0.0/8"
            ) from None

    @field_validator("cors_origins", "trusted_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise _setting_error(
                    "is not a valid JSON list: write it as a JSON list or as comma-separated values"
                ) from None
        return [item.strip() for item in text.split(",") if item.strip()]

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        # The URL is never quoted back: it may hold a password.
        if not value.startswith("postgresql+asyncpg://"):
            raise _setting_error(
                "has the wrong scheme: it must start with postgresql+asyncpg:// "
                "(the async driver the service uses)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://")):
            raise _setting_error("has the wrong scheme: it must start with redis:// or rediss://")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        if not all(origin == "*" or _ORIGIN.fullmatch(origin) for origin in value):
            raise _setting_error(
                "has an entry that is not an origin: each must be * or "
                "scheme://host[:port], with no path and no trailing slash"
            )
        return value

    @field_validator("trusted_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        if not value:
            # The middleware would then refuse every request, health checks included.
            raise _setting_error(
                "is empty: name at least one host, or * for any host "
                "(with none, every request would get 400)"
            )
        if not all(_HOST_PATTERN.fullmatch(host) for host in value):
            raise _setting_error(
                "has an invalid entry: each must be a host name, *.domain for its "
                "subdomains, or * for any host"
            )
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # A development default that reaches production lets anyone sign tokens.
        if info.data.get("environment") != "production":
            return value
        secret = value.get_secret_value()
        if not secret:
            raise _setting_error("is empty: production needs a random key of at least 32 bytes")
        if secret == DEVELOPMENT_SECRET_KEY:
            raise _setting_error("is the development default: production needs its own random key")
        if len(secret.encode()) < MIN_SECRET_KEY_BYTES:
            raise _setting_error("is too short: it must be at least 32 bytes in production")
        return value


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a settings validation error into one line per bad setting, never quoting a value."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "(unknown)"
        message = error["msg"]
        if error["type"] == _SETTING_ERROR:
            lines.append(f"Setting {name} {message}.")
        else:
            # pydantic's own messages ("Input should be 'json' or 'console'") name
            # the allowed values, never the given one.
            lines.append(f"Setting {name} is not valid: {message[:1].lower()}{message[1:]}.")
    return "\n".join(dict.fromkeys(lines))


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, or raise SettingsError with a readable message.

    `overrides` win over the environment (the tests pass their own values).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        # "from None": the chained pydantic error would print its own report.
        raise SettingsError(describe_validation_error(exc)) from None


@lru_cache
def get_settings() -> Settings:
    """Return the process's settings, read once on first use."""
    return load_settings()
