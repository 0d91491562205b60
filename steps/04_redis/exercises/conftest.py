"""The exercises' tests use the step's own fixtures: the database, Redis, the app and its client."""

from tests.conftest import app, client, connection, database, sessionmaker, settings
from tests.redis_fixtures import redis

__all__ = ["app", "client", "connection", "database", "redis", "sessionmaker", "settings"]
