"""The user cache against a real Redis: hits, misses, TTLs, single flight, races and outages."""

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.cache_helpers import (
    USER_JSON,
    BlockingLoader,
    CountingLoader,
    RecordingStats,
    new_user_id,
    wait_until_monitor_shows,
)
from tests.redis_fixtures import redis_paused

from app.cache import UserCache


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


async def test_get_misses_then_hits_after_a_set(
    make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    cache = make_cache()
    user_id = new_user_id()

    assert await cache.get(user_id) is None
    seen = await cache.read(user_id)
    assert seen.value is None
    assert await cache.set(user_id, USER_JSON, seen) is True

    assert await cache.get(user_id) == USER_JSON
    # What the hit-rate dashboard shows: one miss, one hit (read() counts nothing).
    assert (stats.hits, stats.misses) == (1, 1)


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


async def test_ttls_stay_within_a_wide_jitter_band(make_cache: Callable[..., UserCache]) -> None:
    cache = make_cache(ttl_seconds=100.0, jitter=0.5)

    ttls = [cache.ttl_milliseconds() for _ in range(1000)]

    # +-50% means 50 s to 150 s: dividing by the jitter factor instead of multiplying
    # would reach 200 s (one draw in six past 150 s).
    assert min(ttls) >= 50_000, min(ttls)
    assert max(ttls) <= 150_000, max(ttls)


async def test_without_jitter_every_ttl_is_the_configured_one(
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache(ttl_seconds=100.0, jitter=0.0)

    assert {cache.ttl_milliseconds() for _ in range(20)} == {100_000}


async def test_a_ttl_shorter_than_a_millisecond_becomes_one_millisecond(
    make_cache: Callable[..., UserCache],
) -> None:
    # Redis refuses PX 0 ("invalid expire time"): 1 ms is the shortest TTL it can
    # hold, and the closest to the 0.1 ms configured.
    assert make_cache(ttl_seconds=0.0001, jitter=0.0).ttl_milliseconds() == 1


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
    make_cache: Callable[..., UserCache], stats: RecordingStats
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
    # The follower's own load is a miss; the cancelled leader answered nobody.
    assert (stats.hits, stats.misses) == (0, 1)


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
    redis: Redis, make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    cache = make_cache(lock_wait_seconds=0.2)
    user_id = new_user_id()
    # Another replica took the lock and died: nothing will ever fill the key.
    await redis.set(cache.key(user_id) + ":lock", "dead-replica", px=60_000)
    loader = CountingLoader()

    assert await cache.get_or_load(user_id, loader) == USER_JSON

    assert loader.calls == 1
    assert (stats.hits, stats.misses) == (0, 1)  # it went to PostgreSQL
    assert await cache.get(user_id) == USER_JSON
    # The dead replica's lock is not ours to release.
    assert await redis.get(cache.key(user_id) + ":lock") == b"dead-replica"


async def test_a_waiter_loads_itself_once_the_lock_holder_finished_without_caching(
    redis: Redis, make_cache: Callable[..., UserCache], stats: RecordingStats
) -> None:
    # Waiting would end only at this bound: the test ends the wait by freeing the lock.
    cache = make_cache(lock_wait_seconds=60.0, lock_poll_seconds=0.01)
    user_id = new_user_id()
    key = cache.key(user_id)
    await redis.set(key + ":lock", "other-replica", px=60_000)
    loader = CountingLoader()
    async with redis.monitor() as monitor:
        waiter = asyncio.create_task(cache.get_or_load(user_id, loader))
        # Its first poll for the other replica's value (its read asks for key:gen).
        await wait_until_monitor_shows(monitor, f"MGET {key} {key}:lock")

    # The other replica found no such user (or was invalidated): it released its lock
    # without caching anything.
    await redis.delete(key + ":lock")

    assert await waiter == USER_JSON
    assert loader.calls == 1
    assert (stats.hits, stats.misses) == (0, 1)
    assert await cache.get(user_id) == USER_JSON


async def test_the_lock_expires_after_lock_ttl_seconds_should_its_holder_die(
    redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    cache = make_cache(lock_ttl_seconds=1000.0)
    user_id = new_user_id()
    loader = BlockingLoader(USER_JSON)
    loading = asyncio.create_task(cache.get_or_load(user_id, loader))
    await loader.started.wait()

    lock_ttl = await redis.pttl(cache.key(user_id) + ":lock")
    loader.release.set()
    await loading

    # Without an expiry (PTTL -1) a crashed holder would make every other replica
    # wait, then load, for this user forever. 1000 s, less the test's own moments
    # (a minute at most, however busy the machine).
    assert 1_000_000 - 60_000 <= lock_ttl <= 1_000_000, lock_ttl


@pytest.mark.parametrize("value", [USER_JSON, None], ids=["found", "no such user"])
async def test_the_lock_is_released_once_the_load_is_done(
    redis: Redis, make_cache: Callable[..., UserCache], value: bytes | None
) -> None:
    cache = make_cache()
    user_id = new_user_id()

    await cache.get_or_load(user_id, CountingLoader(value))

    # A lock left behind makes the next miss on any replica wait for a load that is over.
    assert await redis.exists(cache.key(user_id) + ":lock") == 0


async def test_a_follower_cancelled_with_its_leader_stays_cancelled_and_loads_nothing(
    unreachable_redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    # Redis unreachable: the leader goes straight to its loader, so its cancellation
    # settles the shared load without waiting on Redis.
    cache = make_cache(unreachable_redis)
    user_id = new_user_id()
    slow = BlockingLoader(USER_JSON)
    leader = asyncio.create_task(cache.get_or_load(user_id, slow))
    await slow.started.wait()
    follower_loader = CountingLoader()
    follower = asyncio.create_task(cache.get_or_load(user_id, follower_loader))
    await asyncio.sleep(0)  # one turn of the loop: the follower now awaits the leader's load

    # Both clients go away at once. The loop wakes the two tasks in this order, and
    # the leader's load ends (cancelled) before the follower hears of its own
    # cancellation: the follower then sees both.
    leader.cancel()
    follower.cancel()

    with pytest.raises(asyncio.CancelledError):
        await follower
    with pytest.raises(asyncio.CancelledError):
        await leader
    # A cancelled request must not swallow its cancellation and query for nobody.
    assert follower_loader.calls == 0


async def test_failed_and_cancelled_loads_leave_the_event_loop_nothing_to_report(
    make_cache: Callable[..., UserCache],
) -> None:
    # asyncio reports a done-callback that raised, and (when it is collected) a
    # future whose exception nobody retrieved, to the loop's exception handler: in
    # production, an ERROR line for every load that failed with no one else waiting.
    cache = make_cache()

    async def failing_loader() -> bytes | None:
        raise LookupError("The database is unavailable.")

    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        with pytest.raises(LookupError):
            await cache.get_or_load(new_user_id(), failing_loader)
        slow = BlockingLoader(USER_JSON)
        cancelled = asyncio.create_task(cache.get_or_load(new_user_id(), slow))
        await slow.started.wait()
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        # One turn of the loop runs the futures' done-callbacks; collecting them
        # (the failed load's future sits in a cycle with its exception) reports any
        # exception left unretrieved.
        await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(previous)

    assert reports == []


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


async def test_a_read_that_starts_after_an_invalidation_does_not_join_the_load_before_it(
    make_cache: Callable[..., UserCache],
) -> None:
    cache = make_cache()
    user_id = new_user_id()
    old_row = BlockingLoader(b'{"full_name": "old"}')
    before = asyncio.create_task(cache.get_or_load(user_id, old_row))
    await old_row.started.wait()

    # The writer commits and invalidates; its client then reads the user back.
    await cache.invalidate(user_id)
    new_row = CountingLoader(b'{"full_name": "new"}')
    after = asyncio.create_task(cache.get_or_load(user_id, new_row))
    old_row.release.set()

    # Joining the load in flight would tell that client the old row after its write.
    assert await after == b'{"full_name": "new"}'
    assert new_row.calls == 1
    assert await before == b'{"full_name": "old"}'
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


async def test_a_generation_lives_as_long_as_the_longest_lived_value_and_no_longer(
    redis: Redis, make_cache: Callable[..., UserCache]
) -> None:
    # Values live up to 1000 s +50%; the lock's 1 s is the shorter bound here.
    cache = make_cache(ttl_seconds=1000.0, jitter=0.5, lock_ttl_seconds=1.0)
    user_id = new_user_id()

    await cache.invalidate(user_id)

    # A generation that expired reads '' again, and a reader that started before any
    # generation existed would have its stale row accepted: to get there it would
    # have to stall longer than any value lives. Longer still would only keep a key
    # per written user for nothing. 1500 s, less the test's own moments (a minute at
    # most, however busy the machine).
    generation_ttl = await redis.pttl(cache.key(user_id) + ":gen")
    assert 1_500_000 - 60_000 <= generation_ttl <= 1_500_000, generation_ttl


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
