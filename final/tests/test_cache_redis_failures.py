"""Each Redis call of the user cache failing on its own: the read still answers, the log says what.

The cache is built on a redis-server of the test's own, which the test stops or
makes refuse writes at the moment it wants (a loader stopping it stands for
Redis dying while PostgreSQL answers).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.cache_helpers import (
    USER_JSON,
    CountingLoader,
    RecordingStats,
    new_user_id,
    wait_until_monitor_shows,
)
from tests.redis_fixtures import (
    FAULT_SOCKET_TIMEOUT,
    is_first_outage_warning,
    logged,
    make_client,
)
from tests.redis_server import RedisServer

from app.cache import UserCache

READS_GO_TO_POSTGRESQL = "Redis is unavailable: user reads go to PostgreSQL"
NOT_CACHED = "Redis is unavailable: a user was not cached"
LOCK_NOT_RELEASED = "Redis is unavailable: a cache lock was not released"
NOT_INVALIDATED = "Redis is unavailable: a user's cache entry was not invalidated"


@pytest.fixture
async def own_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the test's own server, with the fault tests' short timeouts."""
    client = make_client(redis_server.url, timeout=FAULT_SOCKET_TIMEOUT)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def stats() -> RecordingStats:
    return RecordingStats()


@pytest.fixture
def make_cache(stats: RecordingStats) -> Callable[..., UserCache]:
    def make(client: Redis, **options: Any) -> UserCache:
        # Every failure logged, none held back: each line below is one call's.
        options.setdefault("log_interval_seconds", 0)
        return UserCache(client, ttl_seconds=300.0, stats=stats, **options)

    return make


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What the cache logs during the test."""
    caplog.set_level(logging.WARNING, logger="app.cache")
    return caplog


def assert_warnings(log: pytest.LogCaptureFixture, *expected: tuple[str, str]) -> None:
    """The cache logged exactly these (message, error type) lines, in this order."""
    lines = logged(log, "app.cache")
    assert len(lines) == len(expected), lines
    for line, (message, error) in zip(lines, expected, strict=True):
        assert is_first_outage_warning(line, message, error), line


async def test_an_unreachable_redis_is_logged_once_per_interval_saying_where_reads_go(
    unreachable_redis: Redis, make_cache: Callable[..., UserCache], log: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(unreachable_redis, log_interval_seconds=60.0)

    for _ in range(3):
        assert await cache.get(new_user_id()) is None

    # One line for the three reads: the next one is held back for a minute.
    assert_warnings(log, (READS_GO_TO_POSTGRESQL, "ConnectionError"))


async def test_the_outage_is_logged_again_once_the_log_interval_has_passed(
    unreachable_redis: Redis, make_cache: Callable[..., UserCache], log: pytest.LogCaptureFixture
) -> None:
    # An interval of 0 has always passed by the next read: no clock to wait for.
    cache = make_cache(unreachable_redis, log_interval_seconds=0)

    for _ in range(2):
        assert await cache.get(new_user_id()) is None

    assert_warnings(log, *[(READS_GO_TO_POSTGRESQL, "ConnectionError")] * 2)


async def test_a_failed_invalidation_is_reported_and_logged_as_a_possibly_stale_entry(
    unreachable_redis: Redis, make_cache: Callable[..., UserCache], log: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(unreachable_redis)

    assert await cache.invalidate(new_user_id()) is False

    assert_warnings(log, (NOT_INVALIDATED, "ConnectionError"))


async def test_redis_refusing_the_lock_serves_the_read_from_postgresql_and_says_so(
    redis_server: RedisServer,
    own_redis: Redis,
    make_cache: Callable[..., UserCache],
    stats: RecordingStats,
    log: pytest.LogCaptureFixture,
) -> None:
    cache = make_cache(own_redis)
    # The pool's connection is open before the disk fills (a new one's PING would be
    # refused too); then a failed snapshot: reads are still answered, writes refused.
    await own_redis.ping()
    await asyncio.to_thread(redis_server.refuse_writes)
    loader = CountingLoader()

    assert await cache.get_or_load(new_user_id(), loader) == USER_JSON

    # The read found nothing, the lock was refused: one query, counted as a miss.
    assert loader.calls == 1
    assert (stats.hits, stats.misses, stats.errors) == (0, 1, 1)
    assert_warnings(log, (READS_GO_TO_POSTGRESQL, "RedisRefusedError"))


async def test_redis_gone_during_the_load_logs_the_entry_and_the_lock_it_could_not_write(
    redis_server: RedisServer,
    own_redis: Redis,
    make_cache: Callable[..., UserCache],
    stats: RecordingStats,
    log: pytest.LogCaptureFixture,
) -> None:
    cache = make_cache(own_redis)

    async def loader_while_redis_dies() -> bytes:
        # The lock is taken; Redis dies while PostgreSQL answers.
        await asyncio.to_thread(redis_server.stop)
        return USER_JSON

    assert await cache.get_or_load(new_user_id(), loader_while_redis_dies) == USER_JSON

    assert (stats.hits, stats.misses, stats.errors) == (0, 1, 2)
    # The lock stays until its TTL: other replicas wait for it, then load.
    assert_warnings(log, (NOT_CACHED, "ConnectionError"), (LOCK_NOT_RELEASED, "ConnectionError"))


async def test_set_says_false_when_redis_fails_after_the_read(
    redis_server: RedisServer,
    own_redis: Redis,
    make_cache: Callable[..., UserCache],
    log: pytest.LogCaptureFixture,
) -> None:
    cache = make_cache(own_redis)
    user_id = new_user_id()
    seen = await cache.read(user_id)
    await asyncio.to_thread(redis_server.stop)

    assert await cache.set(user_id, USER_JSON, seen) is False

    assert_warnings(log, (NOT_CACHED, "ConnectionError"))


async def test_a_read_taken_while_redis_was_down_is_not_written_back_once_it_is_up(
    redis_server: RedisServer,
    own_redis: Redis,
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache(own_redis)
    user_id = new_user_id()
    await asyncio.to_thread(redis_server.stop)
    try:
        seen = await cache.read(user_id)
    finally:
        await asyncio.to_thread(redis_server.start)

    # No generation was read, so an invalidation in between could not be detected.
    assert seen.available is False
    assert await cache.set(user_id, USER_JSON, seen) is False
    assert await own_redis.exists(cache.key(user_id)) == 0


async def test_redis_gone_while_waiting_for_another_replica_loads_and_logs_it(
    redis_server: RedisServer,
    own_redis: Redis,
    make_cache: Callable[..., UserCache],
    stats: RecordingStats,
    log: pytest.LogCaptureFixture,
) -> None:
    # Waiting would end only at this bound: the test ends the wait by stopping Redis.
    cache = make_cache(own_redis, lock_wait_seconds=60.0, lock_poll_seconds=0.01)
    user_id = new_user_id()
    key = cache.key(user_id)
    await own_redis.set(key + ":lock", "other-replica", px=60_000)
    loader = CountingLoader()
    watcher = make_client(redis_server.url, timeout=5.0)
    try:
        async with watcher.monitor() as monitor:
            waiter = asyncio.create_task(cache.get_or_load(user_id, loader))
            # Its first poll for the other replica's value (its read asks for key:gen).
            await wait_until_monitor_shows(monitor, f"MGET {key} {key}:lock")
    finally:
        await watcher.aclose()

    await asyncio.to_thread(redis_server.stop)

    # A waiter never fails: its next poll fails, so it loads, and cannot cache it.
    assert await waiter == USER_JSON
    assert loader.calls == 1
    assert (stats.hits, stats.misses, stats.errors) == (0, 1, 2)
    assert_warnings(
        log, (READS_GO_TO_POSTGRESQL, "ConnectionError"), (NOT_CACHED, "ConnectionError")
    )
