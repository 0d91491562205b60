"""Settings read from the environment (or .env), validated once at start-up."""

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console"]

# Only ever used outside production: start-up refuses it there.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me-in-production"  # noqa: S105
MIN_SECRET_KEY_BYTES = 32

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
    """Start-up configuration is invalid; the message is one line naming the setting."""


class Settings(BaseSettings):
    """Every setting of the service; names are the environment variables, case-insensitive."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # Error messages must never echo what was typed: it may be a secret.
        hide_input_in_errors=True,
    )

    # repr=False: a database or Redis URL may carry a password.
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/workshop_final", repr=False
    )
    redis_url: str = Field(default="redis://localhost:6379/0", repr=False)
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    environment: Environment = "development"
    # Bounded: a lifetime past datetime's range made every login a 500. A day
    # and a year are far beyond any sane choice, and well inside the range.
    access_token_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=1_209_600, ge=1, le=31_536_000)
    login_rate_limit: Annotated[RateLimit, NoDecode] = RateLimit.parse("5/minute")
    rate_limit: Annotated[RateLimit, NoDecode] = RateLimit.parse("100/minute")
    cors_origins: Annotated[list[str], NoDecode] = []
    trusted_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "test"]
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"

    # Redis, cache and rate limits
    # Short timeouts: a Redis that stops answering costs each request at most
    # this long before it takes its fallback (PostgreSQL, the local limiter).
    redis_socket_timeout_seconds: float = Field(default=0.25, gt=0)
    redis_connect_timeout_seconds: float = Field(default=0.5, gt=0)
    # Idle pooled connections are PINGed before reuse after this long (0: never).
    redis_health_check_interval_seconds: int = Field(default=30, ge=0)
    # One worker serves at most this many Redis calls at once; more wait (up to
    # the socket timeout) for a free connection, then fall back to PostgreSQL as
    # if Redis were down. Size it to the requests a worker holds at once: with 64,
    # 256 concurrent clients pushed the overflow onto PostgreSQL's much smaller
    # pool and got 503s (the benchmark's 256-connection case). Redis connections
    # are cheap; PostgreSQL's are not.
    redis_max_connections: int = Field(default=512, ge=1)
    # False: every user read goes to PostgreSQL (the benchmark's uncached case).
    cache_enabled: bool = True
    # Also the longest a cached user can stay stale if an invalidation fails.
    cache_ttl_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # How long a session checked in PostgreSQL is trusted from Redis alone (the
    # token fast path). Longer saves queries (one per session per TTL); shorter
    # bounds how long a revocation whose marker could not be deleted (Redis
    # unreachable from the revoking replica) is ignored by the other replicas.
    session_marker_ttl_seconds: int = Field(default=30, ge=1, le=3600)
    # Addresses or networks (10.0.0.0/8) of the reverse proxies in front of the
    # service. Only when the connection comes from one of these is the client
    # address read from X-Forwarded-For: anyone else could forge it.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: Any) -> Any:
        items = cls._parse_list(value)
        if not isinstance(items, list):
            return items
        try:
            return [ip_network(str(item)) for item in items]
        except (TypeError, ValueError):
            raise ValueError(
                "it must list IP addresses or networks, such as 10.0.0.1 or 10.0.0.0/8"
            ) from None

    # Operational settings. The pool is fixed (max_overflow is always 0, see
    # app/db.py): overflow connections are opened and closed under load, which
    # measured slower than a steady pool of this size.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Fail a request with 503 after this wait for a pooled connection, rather
    # than queueing it for SQLAlchemy's default 30 s.
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
    slow_query_ms: int = Field(default=200, ge=0)
    # Short: a load balancer asks often, and a hung database must read as "not ready".
    health_check_timeout_seconds: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)

    # Authentication
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
    # them, and the refused ones retry after a second (docs/performance.md).
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    hash_queue_limit: int = Field(default=0, ge=0)

    @field_validator("login_rate_limit", "rate_limit", mode="before")
    @classmethod
    def _parse_rate_limit(cls, value: Any) -> Any:
        return RateLimit.parse(value) if isinstance(value, str) else value

    @field_validator("cors_origins", "trusted_hosts", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("it must be a JSON list or a comma-separated list") from None
        return [item.strip() for item in text.split(",") if item.strip()]

    @field_validator("trusted_hosts")
    @classmethod
    def _check_trusted_hosts(cls, value: list[str]) -> list[str]:
        if not value:
            # The guard middleware would then refuse every request, health checks included.
            raise ValueError(
                "it must name at least one host, or * for any host "
                "(with none, every request would get 400)"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("it must start with postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("it must start with redis:// or rediss://")
        return value

    @model_validator(mode="after")
    def _check_production_secret(self) -> Self:
        secret = self.secret_key.get_secret_value()
        if self.environment == "production" and (
            secret == DEVELOPMENT_SECRET_KEY or len(secret.encode()) < MIN_SECRET_KEY_BYTES
        ):
            raise ValueError(
                "Setting SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY_BYTES} bytes in production."
            )
        return self


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a settings ValidationError into one line naming each bad setting, no values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            name = str(error["loc"][0]).upper()
            problems.append(f"Setting {name} is invalid: {message}.".replace("..", "."))
        else:
            problems.append(message)
    return " ".join(problems)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, raising SettingsError with one clear line when a value is bad."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return load_settings()
