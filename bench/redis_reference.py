"""The fair reference for a cached read: FastAPI plus one Redis GET of a cached JSON user."""

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypedDict

from ceiling import TELEMETRY_OFF
from fastapi import FastAPI, Request, Response
from redis.asyncio import Redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
USER_KEY = "bench:reference:user"
POOL_SIZE = 512


class State(TypedDict):
    """The Redis client the lifespan shares with every request."""

    redis: Redis


def _cached_user() -> bytes:
    """Return a user as final/ caches it: the public fields, serialised once."""
    now = datetime.now(UTC).isoformat()
    user = {
        "id": str(uuid.uuid4()),
        "email": "reference@example.com",
        "full_name": "Reference User",
        "is_active": True,
        "is_admin": False,
        "created_at": now,
        "updated_at": now,
    }
    return json.dumps(user).encode()


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
    """Store the user in Redis at start-up, so every request is a cache hit."""
    # The pool final/ uses by default: redis-py's own (100 connections) raises
    # MaxConnectionsError past 100 requests in flight, and the 256-connection
    # yardstick would measure 500s instead of Redis.
    redis = Redis.from_url(REDIS_URL, max_connections=POOL_SIZE)
    try:
        await redis.set(USER_KEY, _cached_user())
        yield {"redis": redis}
    finally:
        await redis.aclose()


app = FastAPI(lifespan=lifespan, telemetry=TELEMETRY_OFF)


@app.get("/user")
async def cached_user(request: Request) -> Response:
    """Answer with the cached user's JSON: one Redis round trip, no parsing, no validation."""
    cached = await request.state.redis.get(USER_KEY)
    # The bytes are already JSON: re-encoding them would measure json, not Redis.
    return Response(content=cached, media_type="application/json")
