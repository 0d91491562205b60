"""The user cache against a real Redis: hits, misses, TTLs, single flight, races and outages."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.redis_fixtures import redis_paused

from app.cache import UserCache

USER_JSON = b'{"id": "u1", "email": "ada@example.com"}'


class RecordingStats:
    """CacheStats that counts, so tests can assert what the cache reported."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1

    def error(self) -> None:
        self.errors += 1


class CountingLoader:
    """A loader that returns a fixed value and counts its calls, optionally after a pause."""

    def __init__(self, value: bytes | None = USER_JSON, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


class BlockingLoader:
    """A loader that signals it started, then waits to be released: a slow query."""

    def __init__(self, value: bytes) -> None:
        self.value = value
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return self.value


def new_user_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def stats() -> RecordingStats:
    return RecordingStats()


@pytest.fixture
def make_cache(redis: Redis, stats: RecordingStats) -> Callable[..., UserCache]:
    def make(client: Redis | None = None, **options: Any) -> UserCache:
        options.setdefault("ttl_seconds", 300.0)
        return UserCache(client or redis, stats=stats, **options)

    return make


# --- get, set, invalidate ------------------------------------------------------------


async def test_get_misses_then_hits_after_a_set(make_cache: Callable[..., UserCache]) -> None:
    cache = make_cache()
    user_id = new_user_id()

    seen = await cache.read(user_id)
    assert seen.value is None
    assert await cache.set(user_id, USER_JSON, seen) is True

    assert await cache.get(user_id) == USER_JSON


async def test_invalidate_removes_the_entry(make_cache: Callable[..., UserCache]) -> None:
    cache = make_cache()
    user_id = new_user_id()
    await cache.set(user_id, USER_JSON, await cache.read(user_id))

    assert await cache.invalidate(user_id) is True

    assert await cache.get(user_id) is None


async def test_get_or_load_loads_once_then_answers_from_redis(
    make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    loader = CountingLoader()

    first = await cache.get_or_load(user_id, loader)
    second = await cache.get_or_load(user_id, loader)

    assert first == second == USER_JSON
    assert loader.calls == 1
    assert (stats.hits, stats.misses, stats.errors) == (1, 1, 0)


async def test_a_missing_user_is_not_cached(make_cache: Callable[..., UserCache]) -> None:
    cache = make_cache()
    user_id = new_user_id()
    loader = CountingLoader(value=None)

    assert await cache.get_or_load(user_id, loader) is None
    assert await cache.get_or_load(user_id, loader) is None

    assert loader.calls == 2


async def test_ttls_fall_within_the_jitter_band_and_differ(
    redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    cache = make_cache(ttl_seconds=100.0, jitter=0.1)
    user_ids = [new_user_id() for _ in range(50)]

    for user_id in user_ids:
        await cache.get_or_load(user_id, CountingLoader())
    ttls = [await redis.pttl(cache.key(user_id)) for user_id in user_ids]

    # 90 s to 110 s, less the moments the test itself took (well under a second).
    assert all(89_000 <= ttl <= 110_000 for ttl in ttls), ttls
    assert len(set(ttls)) > 25, ttls


async def test_keys_carry_the_cache_version(
    redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    old, new = make_cache(version=1), make_cache(version=2)
    user_id = new_user_id()
    await old.get_or_load(user_id, CountingLoader())

    assert old.key(user_id) == f"v1:user:{user_id}"
    assert await redis.exists(f"v1:user:{user_id}") == 1
    # An entry written in the old shape is never read by code expecting the new one.
    assert await new.get(user_id) is None


# --- single flight -------------------------------------------------------------------


async def test_concurrent_misses_on_one_key_call_the_loader_once(
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    loader = CountingLoader(delay=0.05)

    values = await asyncio.gather(*(cache.get_or_load(user_id, loader) for _ in range(50)))

    assert loader.calls == 1
    assert values == [USER_JSON] * 50


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached(
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    calls = 0

    async def failing_loader() -> bytes | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("The database is unavailable.")

    results = await asyncio.gather(
        *(cache.get_or_load(user_id, failing_loader) for _ in range(5)), return_exceptions=True
    )

    assert calls == 1
    assert all(isinstance(result, LookupError) for result in results), results
    # The failure is not remembered: the next read tries again.
    assert await cache.get_or_load(user_id, CountingLoader()) == USER_JSON


async def test_waiters_load_for_themselves_when_the_first_caller_is_cancelled(
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    slow = BlockingLoader(b"never returned")
    leader = asyncio.create_task(cache.get_or_load(user_id, slow))
    await slow.started.wait()
    follower_loader = CountingLoader()
    follower = asyncio.create_task(cache.get_or_load(user_id, follower_loader))
    await asyncio.sleep(0)

    leader.cancel()

    assert await follower == USER_JSON
    assert follower_loader.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_two_replicas_missing_one_key_load_it_once(
    redis: Redis, make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    # Two caches with their own in-process state stand for two replicas.
    replica_a, replica_b = make_cache(), make_cache(lock_wait_seconds=10.0)
    user_id = new_user_id()
    loader_a = BlockingLoader(USER_JSON)
    loader_b = CountingLoader()
    task_a = asyncio.create_task(replica_a.get_or_load(user_id, loader_a))
    # The loader only runs once its replica holds the cross-process lock.
    await loader_a.started.wait()
    assert await redis.exists(replica_a.key(user_id) + ":lock")

    task_b = asyncio.create_task(replica_b.get_or_load(user_id, loader_b))
    await asyncio.sleep(0.05)
    loader_a.release.set()

    assert await task_a == await task_b == USER_JSON
    assert (loader_a.calls, loader_b.calls) == (1, 0)
    assert stats.hits == 1  # replica B was answered from Redis


async def test_a_waiter_loads_itself_when_the_lock_holder_never_finishes(
    redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    cache = make_cache(lock_wait_seconds=0.2)
    user_id = new_user_id()
    # Another replica took the lock and died: nothing will ever fill the key.
    await redis.set(cache.key(user_id) + ":lock", "dead-replica", px=60_000)
    loader = CountingLoader()

    assert await cache.get_or_load(user_id, loader) == USER_JSON

    assert loader.calls == 1
    assert await cache.get(user_id) == USER_JSON
    # The dead replica's lock is not ours to release.
    assert await redis.get(cache.key(user_id) + ":lock") == b"dead-replica"


# --- stale write-backs ---------------------------------------------------------------


async def test_a_read_that_raced_a_write_does_not_cache_the_old_value(
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    old_row = BlockingLoader(b'{"full_name": "old"}')
    reader = asyncio.create_task(cache.get_or_load(user_id, old_row))
    await old_row.started.wait()

    # The writer commits and invalidates while the reader still holds the old row.
    await cache.invalidate(user_id)
    old_row.release.set()

    assert await reader == b'{"full_name": "old"}'  # what it read, for this one response
    assert await cache.get(user_id) is None  # but never left in the cache
    new_row = CountingLoader(b'{"full_name": "new"}')
    assert await cache.get_or_load(user_id, new_row) == b'{"full_name": "new"}'
    assert await cache.get(user_id) == b'{"full_name": "new"}'


async def test_set_after_an_invalidation_is_refused(make_cache: Callable[..., UserCache]) -> None:
    cache = make_cache()
    user_id = new_user_id()
    seen = await cache.read(user_id)

    await cache.invalidate(user_id)

    assert await cache.set(user_id, USER_JSON, seen) is False
    assert await cache.get(user_id) is None


async def test_a_generation_that_expired_never_comes_back_to_match_an_old_read(
    make_cache: Callable[..., UserCache], redis: Redis
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    await cache.invalidate(user_id)  # an earlier write
    seen = await cache.read(user_id)  # a slow reader starts
    # Its generation expires, as every generation does once nothing changes for a while
    # (deleting it is what the expiry does, without waiting for the clock).
    await redis.delete(cache.key(user_id) + ":gen")

    await cache.invalidate(user_id)  # the write the reader raced

    assert await cache.set(user_id, USER_JSON, seen) is False
    assert await cache.get(user_id) is None


# --- Redis unavailable ---------------------------------------------------------------


async def test_reads_fall_back_to_the_loader_when_redis_is_unreachable(
    unreachable_redis: Redis, make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    cache = make_cache(unreachable_redis)
    user_id = new_user_id()
    loader = CountingLoader()

    assert await cache.get_or_load(user_id, loader) == USER_JSON
    assert await cache.get(user_id) is None
    assert await cache.invalidate(user_id) is False

    assert loader.calls == 1
    assert stats.errors == 3
    assert stats.hits == 0


async def test_concurrent_misses_share_one_load_while_redis_is_unreachable(
    unreachable_redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    cache = make_cache(unreachable_redis)
    user_id = new_user_id()
    loader = CountingLoader(delay=0.05)

    values = await asyncio.gather(*(cache.get_or_load(user_id, loader) for _ in range(20)))

    assert values == [USER_JSON] * 20
    assert loader.calls == 1


async def test_reads_fall_back_while_redis_is_paused_and_cache_again_after(
    fault_redis: Redis, make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    cache = make_cache(fault_redis)
    user_id = new_user_id()
    loader = CountingLoader()

    async with redis_paused():
        assert await cache.get_or_load(user_id, loader) == USER_JSON
        assert stats.errors == 1

    assert await cache.get_or_load(user_id, loader) == USER_JSON
    assert await cache.get(user_id) == USER_JSON
    assert loader.calls == 2
