"""The exercises' tests use the step's own fixtures, the check for blocking calls included."""

from tests.conftest import (
    app,
    client,
    connection,
    database,
    no_blocking_calls,
    observer,
    sessionmaker,
    settings,
)

__all__ = [
    "app",
    "client",
    "connection",
    "database",
    "no_blocking_calls",
    "observer",
    "sessionmaker",
    "settings",
]
