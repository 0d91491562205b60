"""The one-round-trip fast path: rate limit, session marker and cached user in one script."""

import logging
import uuid

import pytest
from redis.asyncio import Redis
from tests.redis_fixtures import (
    is_first_outage_warning,
    logged,
    naming,
    redis_commands,
    redis_paused,
)

from app import session_markers
from app.ratelimit import RedisRateLimiter
from app.redis_client import ThrottledLog
from app.session_markers import (
    REDIS_UNAVAILABLE,
    FastPathResult,
    check_request,
    forget_sessions,
    mark_session_live,
    session_key,
)

USER_JSON = b'{"id": "u1", "email": "ada@example.com"}'
LIMIT_KEY = "rl:api:127.0.0.1"
SESSION_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
SESSION_KEY = session_key(SESSION_ID)
USER_ID = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
USER_KEY = f"v1:user:{USER_ID}"


async def check(
    redis: Redis, *, limit: int = 100, period: float = 60, user_id: uuid.UUID = USER_ID
) -> FastPathResult:
    return await check_request(
        redis,
        limit_key=LIMIT_KEY,
        limit=limit,
        period_seconds=period,
        session_key=SESSION_KEY,
        user_id=user_id,
        user_key=USER_KEY,
    )


async def mark(redis: Redis, *, is_admin: bool = False, ttl: int = 60) -> bool:
    return await mark_session_live(
        redis, SESSION_KEY, user_id=USER_ID, is_admin=is_admin, ttl_seconds=ttl
    )


async def forget(redis: Redis) -> bool:
    return await forget_sessions(redis, [SESSION_ID], ttl_seconds=60)


def test_the_session_key_is_versioned_and_names_the_session() -> None:
    assert SESSION_KEY == "v1:session:00000000-0000-4000-8000-000000000001"


async def test_a_live_session_with_a_cached_user_is_answered_in_one_call(redis: Redis) -> None:
    assert await mark(redis)
    await redis.set(USER_KEY, USER_JSON)

    result = await check(redis)

    assert result.redis_available
    assert result.session_live
    assert not result.is_admin
    assert result.cached_user == USER_JSON
    assert result.rate_limit is not None
    assert result.rate_limit.allowed
    assert result.rate_limit.remaining == 99


async def test_an_unknown_session_and_an_uncached_user_are_reported_as_such(
    redis: Redis,
) -> None:
    result = await check(redis)

    assert result.redis_available
    assert not result.session_live
    assert result.cached_user is None


async def test_the_marker_records_an_admins_role(redis: Redis) -> None:
    assert await mark(redis, is_admin=True)

    result = await check(redis)

    assert result.session_live
    assert result.is_admin


async def test_a_forgotten_session_is_no_longer_live(redis: Redis) -> None:
    await mark(redis, is_admin=True)

    assert await forget(redis)

    result = await check(redis)
    assert not result.session_live
    assert not result.is_admin


async def test_a_marker_written_after_the_forget_does_not_revive_the_session(
    redis: Redis,
) -> None:
    # A check that read the session from PostgreSQL just before the revocation
    # committed, and writes its marker just after the revocation's forget.
    await forget(redis)

    assert not await mark(redis)

    assert not (await check(redis)).session_live
    assert 0 < await redis.ttl(SESSION_KEY) <= 60


async def test_forgetting_no_sessions_needs_no_redis(unreachable_redis: Redis) -> None:
    assert await forget_sessions(unreachable_redis, [], ttl_seconds=60)


async def test_a_marker_of_an_unknown_format_means_ask_postgresql(redis: Redis) -> None:
    await redis.set(SESSION_KEY, b"1")

    assert not (await check(redis)).session_live


async def test_a_marker_vouches_only_for_the_user_it_names(redis: Redis) -> None:
    # PostgreSQL checks that the session is the token subject's: so does the marker.
    await mark(redis, is_admin=True)

    result = await check(redis, user_id=uuid.uuid4())

    assert not result.session_live
    assert not result.is_admin


async def test_the_session_marker_expires(redis: Redis) -> None:
    await mark(redis, ttl=30)

    assert 0 < await redis.ttl(SESSION_KEY) <= 30


async def test_a_refused_request_gets_retry_after_and_no_user(redis: Redis) -> None:
    await redis.set(USER_KEY, USER_JSON)
    await check(redis, limit=1)

    result = await check(redis, limit=1)

    assert result.rate_limit is not None
    assert not result.rate_limit.allowed
    assert result.rate_limit.retry_after_seconds >= 1
    assert result.cached_user is None


async def test_the_fast_path_and_the_rate_limiter_share_one_count(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    await limiter.hit(LIMIT_KEY, 3, 60)
    await check(redis, limit=3)

    last = await limiter.hit(LIMIT_KEY, 3, 60)
    refused = await check(redis, limit=3)

    assert last.allowed
    assert last.remaining == 0
    assert refused.rate_limit is not None
    assert not refused.rate_limit.allowed


async def test_the_script_is_reloaded_after_the_server_forgets_it(redis: Redis) -> None:
    await check(redis)
    await redis.script_flush()

    result = await check(redis)

    assert result.redis_available
    assert result.rate_limit is not None
    assert result.rate_limit.remaining == 98


async def test_a_second_check_runs_the_loaded_script_by_its_digest(redis: Redis) -> None:
    await check(redis)  # loads the script, if this server did not have it

    async with redis_commands(redis) as sent:
        await check(redis)

    # EVALSHA sends 40 characters where EVAL sends the whole script, every request.
    assert naming(sent, SESSION_KEY) == ["EVALSHA"], sent


async def test_an_unreachable_redis_is_reported_not_raised(unreachable_redis: Redis) -> None:
    assert await check(unreachable_redis) == REDIS_UNAVAILABLE
    assert await mark(unreachable_redis) is False
    assert await forget(unreachable_redis) is False


@pytest.fixture
def log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> pytest.LogCaptureFixture:
    """What this module logs during the test, with no earlier line holding a warning back."""
    # The warnings' throttle is the module's: a line another test caused in the
    # last minute would swallow this test's one.
    monkeypatch.setattr(session_markers, "_log", ThrottledLog(session_markers.logger))
    caplog.set_level(logging.WARNING, logger=session_markers.logger.name)
    return caplog


def lines(log: pytest.LogCaptureFixture) -> list[str]:
    """The module's log lines."""
    return logged(log, session_markers.logger.name)


async def test_an_unreachable_redis_is_logged_with_what_the_check_falls_back_to(
    unreachable_redis: Redis, log: pytest.LogCaptureFixture
) -> None:
    await check(unreachable_redis)

    [line] = lines(log)
    expected = "Redis is unavailable: requests are checked against PostgreSQL"
    assert is_first_outage_warning(line, expected), line


async def test_a_marker_that_cannot_be_written_is_logged(
    unreachable_redis: Redis, log: pytest.LogCaptureFixture
) -> None:
    await mark(unreachable_redis)

    [line] = lines(log)
    expected = "Redis is unavailable: a session marker was not written"
    assert is_first_outage_warning(line, expected), line


async def test_a_revocation_that_cannot_reach_redis_says_how_long_its_sessions_may_stay(
    unreachable_redis: Redis, log: pytest.LogCaptureFixture
) -> None:
    sessions = [SESSION_ID, uuid.UUID("00000000-0000-4000-8000-000000000002")]
    await forget_sessions(unreachable_redis, sessions, ttl_seconds=45)

    assert lines(log) == [
        "Redis is unavailable: 2 revoked session(s) may stay admitted by their marker "
        "for up to 45 seconds (ConnectionError)."
    ]
    [record] = log.records
    assert record.levelno == logging.ERROR, "a failed revocation is an error, not a warning"


async def test_a_paused_redis_is_reported_unavailable_then_used_again(
    fault_redis: Redis,
) -> None:
    await mark(fault_redis)

    async with redis_paused():
        during = await check(fault_redis)

    after = await check(fault_redis)
    assert during == REDIS_UNAVAILABLE
    assert after.redis_available
    assert after.session_live


@pytest.mark.parametrize("limit", [1, 7, 1000])
async def test_remaining_counts_down_from_the_limit(redis: Redis, limit: int) -> None:
    first = await check(redis, limit=limit, period=3600)

    assert first.rate_limit is not None
    assert first.rate_limit.remaining == limit - 1
    # The limit the RateLimit-Policy header names: the one the check applied.
    assert first.rate_limit.limit == limit
