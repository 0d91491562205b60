"""The exercises' tests use the step's own fixtures: a user, their tokens, the client."""

from tests.conftest import (
    app,
    auth_headers,
    client,
    connection,
    database,
    no_blocking_calls,
    sessionmaker,
    settings,
    tokens,
    user,
)
from tests.redis_fixtures import redis

__all__ = [
    "app",
    "auth_headers",
    "client",
    "connection",
    "database",
    "no_blocking_calls",
    "redis",
    "sessionmaker",
    "settings",
    "tokens",
    "user",
]
