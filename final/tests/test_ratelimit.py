"""Rate limits on a real Redis, the per-process fallback, and what happens when Redis is gone."""

import logging

import pytest
from redis.asyncio import Redis
from tests.redis_fixtures import (
    is_first_outage_warning,
    logged,
    redis_paused,
    wait_for_redis_clock,
)

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


async def server_time(redis: Redis) -> float:
    """The Redis server's clock (TIME), the one the script reads, in seconds."""
    whole, micro = await redis.time()
    return whole + micro / 1_000_000


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


async def test_a_limit_of_one_allows_one_call_and_refuses_the_next_for_the_period(
    redis: Redis,
) -> None:
    limiter = RedisRateLimiter(redis)

    before = await server_time(redis)
    first, second = await hit_times(limiter, "rl:ip:1:login", 2, limit=1, period=3600)
    elapsed = await server_time(redis) - before

    # A fresh key: the bucket holds exactly one request's worth (the whole hour)
    # whatever the clock says, so the first reply is exact.
    assert first == RateLimitDecision(
        allowed=True, limit=1, period_seconds=3600, remaining=0, retry_after=0, reset_after=3600
    )
    # The second call came after the first by the server's clock, by no more than
    # both calls took: the hour less that time is left, however busy the machine.
    assert not second.allowed
    assert second.remaining == 0
    assert 3600 - elapsed <= second.retry_after <= 3600
    # With a limit of one, the quota is whole again the moment a call is allowed.
    assert second.reset_after == second.retry_after


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


def test_local_limit_of_one_allows_again_exactly_when_the_period_has_passed() -> None:
    clock = FakeClock()  # at 1000 s
    limiter = LocalRateLimiter(clock=clock)

    first = limiter.hit("login:ada", 1, 60)
    second = limiter.hit("login:ada", 1, 60)
    clock.now = 1059.999_999  # one microsecond short of the period (the limiter counts in µs)
    too_early = limiter.hit("login:ada", 1, 60)
    clock.now = 1060.0
    on_time = limiter.hit("login:ada", 1, 60)

    # Decided without Redis, so every decision says so (the login route's metrics read it).
    assert first == RateLimitDecision(
        allowed=True,
        limit=1,
        period_seconds=60,
        remaining=0,
        retry_after=0,
        reset_after=60,
        degraded=True,
    )
    assert second == RateLimitDecision(
        allowed=False,
        limit=1,
        period_seconds=60,
        remaining=0,
        retry_after=60,
        reset_after=60,
        degraded=True,
    )
    assert not too_early.allowed
    assert too_early.retry_after_seconds == 1
    assert on_time == first


def test_local_limiter_memory_is_bounded() -> None:
    limiter = LocalRateLimiter(max_keys=100, clock=FakeClock())

    for client in range(1000):
        limiter.hit(f"client:{client}", 5, 60)

    assert len(limiter) == 100


def test_local_limiter_remembers_ten_thousand_clients_by_default() -> None:
    # The bound the docs promise for the login limit's fallback: a flood of new
    # addresses costs at most this many keys of memory.
    limiter = LocalRateLimiter(clock=FakeClock())

    for client in range(10_001):
        limiter.hit(f"client:{client}", 5, 60)

    assert len(limiter) == 10_000


def test_local_limiter_forgets_the_least_recently_counted_client_first() -> None:
    limiter = LocalRateLimiter(max_keys=2, clock=FakeClock())
    limiter.hit("a", 2, 60)
    limiter.hit("b", 2, 60)
    limiter.hit("a", 2, 60)  # a is counted again: b is now the one idle the longest

    limiter.hit("c", 2, 60)  # one key too many: b goes

    # c and a are remembered: c's second call and a's third are counted as such.
    assert limiter.hit("c", 2, 60).remaining == 0
    assert not limiter.hit("a", 2, 60).allowed
    # b was forgotten: it starts again from a full quota.
    assert limiter.hit("b", 2, 60).remaining == 1


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


async def test_a_failed_open_decision_allows_the_whole_quota_and_says_it_was_not_counted(
    unreachable_redis: Redis,
) -> None:
    limiter = RedisRateLimiter(unreachable_redis)

    decision = await limiter.hit("rl:ip:1:api", 5, 60)

    # Nothing was counted: nothing to wait for, and the full quota is (as far as we know) left.
    assert decision == RateLimitDecision(
        allowed=True,
        limit=5,
        period_seconds=60,
        remaining=5,
        retry_after=0,
        reset_after=0,
        degraded=True,
    )


async def test_without_redis_the_fallback_counts_each_key_separately(
    unreachable_redis: Redis,
) -> None:
    limiter = RedisRateLimiter(unreachable_redis, fallback=LocalRateLimiter())

    await limiter.hit("rl:login:ip:203.0.113.1", 1, 60)

    # Another client's first login is its own, not the first client's second.
    assert (await limiter.hit("rl:login:ip:203.0.113.2", 1, 60)).allowed
    assert not (await limiter.hit("rl:login:ip:203.0.113.1", 1, 60)).allowed


# --- what an operator reads while Redis is unavailable --------------------------------


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What the limiter logs during the test (each limiter has its own throttle)."""
    caplog.set_level(logging.WARNING, logger="app.ratelimit")
    return caplog


def lines(log: pytest.LogCaptureFixture) -> list[str]:
    """The limiter's log lines."""
    return logged(log, "app.ratelimit")


@pytest.mark.parametrize(
    ("with_fallback", "expected"),
    [
        (False, "Redis is unavailable: the rate limit is not enforced"),
        (True, "Redis is unavailable: rate limits are per process"),
    ],
    ids=["fails open", "falls back to the process"],
)
async def test_an_unreachable_redis_is_logged_once_with_what_the_limit_falls_back_to(
    unreachable_redis: Redis,
    log: pytest.LogCaptureFixture,
    with_fallback: bool,
    expected: str,
) -> None:
    fallback = LocalRateLimiter() if with_fallback else None
    limiter = RedisRateLimiter(unreachable_redis, fallback=fallback)

    await hit_times(limiter, "rl:ip:1:login", 3, limit=5, period=60)

    # One line for the three checks: the next one is held back for a minute.
    [line] = lines(log)
    assert is_first_outage_warning(line, expected), line


async def test_the_outage_is_logged_again_once_the_log_interval_has_passed(
    unreachable_redis: Redis, log: pytest.LogCaptureFixture
) -> None:
    # An interval of 0 has always passed by the next check: no clock to wait for.
    limiter = RedisRateLimiter(unreachable_redis, log_interval_seconds=0)

    await hit_times(limiter, "rl:ip:1:api", 2, limit=5, period=60)

    assert len(lines(log)) == 2, lines(log)
