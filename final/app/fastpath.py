"""The authenticated read's fast path: rate limit, session and cached user in one round trip."""

import hashlib
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from app.ratelimit import GCRA_LUA, RateLimitDecision, decision_from_reply, period_microseconds
from app.redis_client import REDIS_ERRORS, ThrottledLog

logger = logging.getLogger("app.fastpath")
_log = ThrottledLog(logger)

# One Redis round trip costs about as much as all the rest of a cached request
# (see PERFORMANCE.md), so the three look-ups an authenticated read needs run in
# one script: one EVALSHA instead of three commands.
# KEYS: [1] the rate-limit key, [2] the session-live marker, [3] the cached user.
# ARGV: [1] the limit, [2] its period in microseconds.
# --8<-- [start:script]
FASTPATH_LUA = (
    GCRA_LUA
    + """
local limit = rate_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
-- The auth layer writes this marker after checking the session in PostgreSQL
-- and deletes it on revocation; absent means "ask PostgreSQL".
local session_live = redis.call('EXISTS', KEYS[2])
-- A refused request gets a 429 whatever the user: do not ship the JSON back.
local user = false
if limit[1] == 1 then
  user = redis.call('GET', KEYS[3])
end
return {limit[1], limit[2], limit[3], limit[4], session_live, user}
"""
)
# --8<-- [end:script]
# EVALSHA needs the script's SHA1; computed once, here, instead of per call.
_FASTPATH_SHA = hashlib.sha1(FASTPATH_LUA.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class FastPathResult:
    """What one fast-path call learned; when Redis is unavailable, only that."""

    redis_available: bool
    # None when Redis was unavailable: the caller applies its local limiter.
    rate_limit: RateLimitDecision | None
    # True: the session was verified in PostgreSQL recently and not revoked since.
    session_live: bool
    # The cached public user's JSON, or None (a miss, a refused request, or no Redis).
    cached_user: bytes | None


REDIS_UNAVAILABLE = FastPathResult(
    redis_available=False, rate_limit=None, session_live=False, cached_user=None
)


async def check_request(
    redis: Redis,
    *,
    limit_key: str,
    limit: int,
    period_seconds: float,
    session_key: str,
    user_key: str,
) -> FastPathResult:
    """Apply the rate limit, check the session marker and read the cached user, in one call."""
    keys_and_args = (limit_key, session_key, user_key, limit, period_microseconds(period_seconds))
    try:
        try:
            reply = await redis.evalsha(_FASTPATH_SHA, 3, *keys_and_args)
        except NoScriptError:
            # First call on this server (or after a restart or SCRIPT FLUSH): EVAL
            # runs the source and leaves it in the script cache for the next EVALSHA.
            reply = await redis.eval(FASTPATH_LUA, 3, *keys_and_args)
    except REDIS_ERRORS as error:
        _log.warning("Redis is unavailable: requests are checked against PostgreSQL", error)
        return REDIS_UNAVAILABLE
    return FastPathResult(
        redis_available=True,
        rate_limit=decision_from_reply(reply[:4], limit, period_seconds),
        session_live=reply[4] == 1,
        cached_user=reply[5],
    )


async def mark_session_live(redis: Redis, session_key: str, ttl_seconds: int) -> bool:
    """Record that a session was just verified in PostgreSQL; False when Redis is unavailable."""
    try:
        # A short TTL bounds how long a marker outlives a revocation whose
        # forget_session failed: the durable state is always PostgreSQL's.
        await redis.set(session_key, b"1", ex=ttl_seconds)
    except REDIS_ERRORS as error:
        _log.warning("Redis is unavailable: a session marker was not written", error)
        return False
    return True


async def forget_session(redis: Redis, session_key: str) -> bool:
    """Delete a session's marker on revocation; False when Redis is unavailable."""
    try:
        await redis.delete(session_key)
    except REDIS_ERRORS as error:
        # Not throttled: every failed revocation matters, and they are rare.
        logger.error(
            "Redis is unavailable: a revoked session's marker may outlive the revocation "
            "by up to its TTL (%s).",
            type(error).__name__,
        )
        return False
    return True
