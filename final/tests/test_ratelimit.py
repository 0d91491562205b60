"""Rate limits on a real Redis, the per-process fallback, and what happens when Redis is gone."""

import pytest
from redis.asyncio import Redis
from tests.redis_fixtures import redis_paused, wait_for_redis_clock

from app.ratelimit import LocalRateLimiter, RateLimitDecision, RedisRateLimiter, rate_limit_headers


class RecordingStats:
    """RateLimitStats that counts degraded checks."""

    def __init__(self) -> None:
        self.degraded_checks = 0

    def degraded(self) -> None:
        self.degraded_checks += 1


class FakeClock:
    """A clock the test moves by hand: the local limiter's behaviour without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stats() -> RecordingStats:
    return RecordingStats()


async def hit_times(
    limiter: RedisRateLimiter, key: str, times: int, limit: int, period: float
) -> list[RateLimitDecision]:
    return [await limiter.hit(key, limit, period) for _ in range(times)]


# --- the shared limit ----------------------------------------------------------------


async def test_the_call_after_the_limit_is_refused_with_retry_after(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)

    decisions = await hit_times(limiter, "rl:ip:1:api", 6, limit=5, period=60)

    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    # One request's worth of quota (60 s / 5) comes back first.
    assert 11 < refused.retry_after <= 12
    assert refused.retry_after_seconds == 12
    assert not refused.degraded


async def test_retry_after_is_at_least_one_second(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)

    decisions = await hit_times(limiter, "rl:ip:1:api", 11, limit=10, period=1)

    refused = decisions[-1]
    assert not refused.allowed
    assert refused.retry_after < 1
    assert refused.retry_after_seconds == 1


async def test_two_limiters_on_one_redis_share_the_count(redis: Redis) -> None:
    replica_a, replica_b = RedisRateLimiter(redis), RedisRateLimiter(redis)

    await hit_times(replica_a, "rl:ip:1:api", 3, limit=5, period=60)
    on_b = await hit_times(replica_b, "rl:ip:1:api", 3, limit=5, period=60)

    assert [d.allowed for d in on_b] == [True, True, False]


async def test_keys_are_counted_separately(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    await hit_times(limiter, "rl:ip:1:login", 2, limit=2, period=60)

    assert (await limiter.hit("rl:ip:2:login", 2, 60)).allowed
    assert not (await limiter.hit("rl:ip:1:login", 2, 60)).allowed


async def test_the_window_slides_and_quota_comes_back(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    # 2 per 3 s: a token comes back every 1.5 s, longer than a busy machine
    # takes for these three calls, so the third is refused however slow they are.
    first = await hit_times(limiter, "rl:ip:1:api", 3, limit=2, period=3)
    assert [d.allowed for d in first] == [True, True, False]

    await wait_for_redis_clock(redis, 3)

    again = await hit_times(limiter, "rl:ip:1:api", 3, limit=2, period=3)
    assert [d.allowed for d in again] == [True, True, False]


async def test_a_limit_key_expires_once_its_quota_is_back(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)

    await limiter.hit("rl:ip:1:api", 5, 60)

    # Memory stays bounded: the key lives only while it holds a debt (60 s / 5 here).
    assert 0 < await redis.pttl("rl:ip:1:api") <= 12_000


def test_headers_describe_the_policy_and_what_is_left() -> None:
    allowed = RateLimitDecision(
        allowed=True, limit=100, period_seconds=60, remaining=42, retry_after=0, reset_after=34.2
    )
    refused = RateLimitDecision(
        allowed=False, limit=5, period_seconds=60, remaining=0, retry_after=11.5, reset_after=59.9
    )

    assert rate_limit_headers(allowed) == {
        "RateLimit-Policy": '"default";q=100;w=60',
        "RateLimit": '"default";r=42;t=35',
    }
    assert rate_limit_headers(refused, policy="login") == {
        "RateLimit-Policy": '"login";q=5;w=60',
        "RateLimit": '"login";r=0;t=60',
        "Retry-After": "12",
    }


# --- the per-process limiter ---------------------------------------------------------


def test_local_limiter_refuses_the_call_after_the_limit() -> None:
    limiter = LocalRateLimiter(clock=FakeClock())

    decisions = [limiter.hit("login:ada", 5, 60) for _ in range(6)]

    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert decisions[-1].retry_after_seconds == 12


def test_local_limiter_gives_quota_back_as_time_passes() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(clock=clock)
    assert [limiter.hit("k", 3, 1).allowed for _ in range(4)] == [True, True, True, False]

    clock.now += 0.34  # a little over one request's worth: 1 s / 3
    assert [limiter.hit("k", 3, 1).allowed for _ in range(2)] == [True, False]

    clock.now += 1
    assert [limiter.hit("k", 3, 1).allowed for _ in range(4)] == [True, True, True, False]


def test_local_limiter_memory_is_bounded() -> None:
    limiter = LocalRateLimiter(max_keys=100, clock=FakeClock())

    for client in range(1000):
        limiter.hit(f"client:{client}", 5, 60)

    assert len(limiter) == 100


# --- Redis unavailable ---------------------------------------------------------------


async def test_the_general_limit_fails_open_when_redis_is_unreachable(
    unreachable_redis: Redis, stats: RecordingStats
) -> None:
    limiter = RedisRateLimiter(unreachable_redis, stats=stats)

    decisions = await hit_times(limiter, "rl:ip:1:api", 10, limit=2, period=60)

    assert all(d.allowed and d.degraded for d in decisions)
    assert stats.degraded_checks == 10


async def test_the_login_limit_falls_back_to_the_local_limiter(
    unreachable_redis: Redis, stats: RecordingStats
) -> None:
    limiter = RedisRateLimiter(unreachable_redis, fallback=LocalRateLimiter(), stats=stats)

    decisions = await hit_times(limiter, "rl:ip:1:login", 4, limit=3, period=60)

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert all(d.degraded for d in decisions)
    assert stats.degraded_checks == 4


async def test_the_login_limit_holds_while_redis_is_paused(
    fault_redis: Redis, stats: RecordingStats
) -> None:
    limiter = RedisRateLimiter(fault_redis, fallback=LocalRateLimiter(), stats=stats)

    async with redis_paused():
        during = await hit_times(limiter, "rl:ip:1:login", 3, limit=2, period=60)

    after = await limiter.hit("rl:ip:1:login", 2, 60)
    assert [d.allowed for d in during] == [True, True, False]
    assert all(d.degraded for d in during)
    # Redis is back: the shared count (empty, the paused calls never reached it) applies.
    assert after.allowed
    assert not after.degraded
