"""The lifespan's state: what every request shares, and the one typed way to read it."""

from typing import TypedDict, cast

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.cache import UserCache
from app.config import Settings
from app.metrics import Metrics
from app.ratelimit import RedisRateLimiter
from app.security import PasswordHasher


class State(TypedDict):
    """What the lifespan opens once and lends to every request."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    # None when CACHE_ENABLED is false: every user read goes to PostgreSQL.
    user_cache: UserCache | None
    # The general per-client limit: fails open while Redis is unavailable.
    api_limiter: RedisRateLimiter
    # The login limit: falls back to a per-process limiter, never to no limit.
    login_limiter: RedisRateLimiter
    # One registry per app, so several apps in one process (tests) never collide.
    metrics: Metrics
    # One per app: its limit on concurrent password hashing covers every route.
    password_hasher: PasswordHasher


def request_state(connection: HTTPConnection) -> State:
    """The lifespan's state as this request sees it, typed, so mypy checks every read.

    The ASGI server copies the dict the lifespan yielded into each request's
    scope (`scope["state"]`); `request.state.x` reads the same dict, untyped.
    This is the one place that tells the type checker what the dict holds.
    """
    return cast(State, connection.scope["state"])
