"""CPU time of one Redis call in redis-py, per client set-up and per call shape.

A cached read's Redis call is most of its cost (docs/performance.md), so
this measures it apart from HTTP: each variant runs a batch of calls one
after another, the variants taking turns, and the best batch's CPU time (the
process's, not the wall clock: other work on the machine does not count) per
call is printed. Run from the repository root with final/'s dependencies:

    REDIS_URL=redis://127.0.0.1:6379/12 python bench/redis_calls.py
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "final"))

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# final/'s modules, imported by name: mypy checks them in final/, not from here.
session_markers = importlib.import_module("app.session_markers")
create_redis = importlib.import_module("app.redis_client").create_redis

CALLS = 2000
ROUNDS = 15
USER_JSON = b'{"id":"0","email":"bench@example.com","full_name":"Bench","is_active":true}'


def _final_options() -> dict[str, object]:
    return {
        "max_connections": 512,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    }


async def _variants(url: str) -> dict[str, Callable[[], Awaitable[object]]]:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    marker = session_markers.session_key(session_id)
    user_key = f"v1:user:{user_id}"
    plain = Redis.from_url(url)
    await plain.set(user_key, USER_JSON)
    await plain.set(marker, session_markers.marker_value(user_id, is_admin=False))
    final = create_redis(
        url, socket_timeout=2.0, connect_timeout=2.0, health_check_interval=30, max_connections=512
    )
    # final/'s settings, on the pool that does not wait for a free connection.
    unblocking = Redis.from_pool(ConnectionPool.from_url(url, **_final_options()))
    blocking = Redis.from_pool(
        BlockingConnectionPool.from_url(url, timeout=2.0, **_final_options())
    )

    def fast_path(client: Redis) -> Callable[[], Awaitable[object]]:
        return lambda: session_markers.check_request(
            client,
            limit_key="rl:api:127.0.0.1",
            limit=1_000_000,
            period_seconds=1,
            session_key=marker,
            user_id=user_id,
            user_key=user_key,
        )

    return {
        "GET, redis-py defaults (the one-GET reference)": lambda: plain.get(user_key),
        "GET, final/'s client (create_redis)": lambda: final.get(user_key),
        "GET, final/'s settings on a ConnectionPool": lambda: unblocking.get(user_key),
        "GET, final/'s settings on a BlockingConnectionPool": lambda: blocking.get(user_key),
        "fast path EVALSHA, final/'s client (create_redis)": fast_path(final),
        "fast path EVALSHA, final/'s settings on a ConnectionPool": fast_path(unblocking),
        "fast path EVALSHA, final/'s settings on a BlockingConnectionPool": fast_path(blocking),
    }


async def _batch(call: Callable[[], Awaitable[object]]) -> float:
    started = time.process_time()
    for _ in range(CALLS):
        await call()
    return (time.process_time() - started) / CALLS


async def main() -> None:
    """Print the best batch's CPU µs per call of every variant."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
    variants = await _variants(url)
    best = dict.fromkeys(variants, float("inf"))
    for call in variants.values():
        await _batch(call)  # connect, load the script, warm up
    for _ in range(ROUNDS):
        for name, call in variants.items():
            best[name] = min(best[name], await _batch(call))
    print(f"CPU µs per call, best of {ROUNDS} batches of {CALLS}, the variants taking turns:")
    for name, seconds in best.items():
        print(f"{seconds * 1e6:7.1f}  {name}")


if __name__ == "__main__":
    asyncio.run(main())
