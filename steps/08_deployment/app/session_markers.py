"""Session markers in Redis: the token check's one round trip, and forgetting ended sessions."""

import hashlib
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from app.ratelimit import GCRA_LUA, RateLimitDecision, decision_from_reply, period_microseconds
from app.redis_client import REDIS_ERRORS, ThrottledLog
from app.state import request_state

logger = logging.getLogger("app.session_markers")
_log = ThrottledLog(logger)

# A live session marker's value is "<role>:<user id>": the role, so that
# authorisation needs no query either, and the user, because PostgreSQL checks
# that the session belongs to the token's subject and so must the marker. Any
# other value, or none, means "ask PostgreSQL" (an older format is merely a miss).
#
# REVOKED is written over a live marker on revocation, and markers are only
# written where no value exists (SET NX). So a check that read the session from
# PostgreSQL just BEFORE a revocation committed cannot write its stale marker
# AFTER the revocation replaced the live one: the race the user cache's
# generation counters close, closed here by the tombstone.
REVOKED = b"revoked"


def session_key(session_id: uuid.UUID) -> str:
    """The Redis key of a session's marker (the version changes with the value's format)."""
    return f"v1:session:{session_id}"


def marker_value(user_id: uuid.UUID, *, is_admin: bool) -> bytes:
    """The value of a live session's marker."""
    return f"{'admin' if is_admin else 'user'}:{user_id}".encode()


# One Redis round trip costs about as much as all the rest of a cached request
# (see PERFORMANCE.md), so the three look-ups an authenticated request needs run
# in one script: one EVALSHA instead of three commands.
# KEYS: [1] the rate-limit key, [2] the session marker, [3] the cached user.
# ARGV: [1] the limit, [2] its period in microseconds.
FASTPATH_LUA = (
    GCRA_LUA
    + """
local limit = rate_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
-- The auth layer writes this marker after checking the session in PostgreSQL
-- and overwrites it on revocation; the caller reads it (see marker_value).
local marker = redis.call('GET', KEYS[2])
-- A refused request gets a 429 whatever the user: do not ship the JSON back.
local user = false
if limit[1] == 1 then
  user = redis.call('GET', KEYS[3])
end
return {limit[1], limit[2], limit[3], limit[4], marker, user}
"""
)
# EVALSHA needs the script's SHA1; computed once, here, instead of per call.
_FASTPATH_SHA = hashlib.sha1(FASTPATH_LUA.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class FastPathResult:
    """What one fast-path call learned; when Redis is unavailable, only that."""

    redis_available: bool
    # None when Redis was unavailable: the caller decides without it.
    rate_limit: RateLimitDecision | None
    # True: the session was verified in PostgreSQL recently and not revoked since.
    session_live: bool
    # The role the live marker recorded (False when the session is not live).
    is_admin: bool
    # The cached public user's JSON, or None (a miss, a refused request, or no Redis).
    cached_user: bytes | None


REDIS_UNAVAILABLE = FastPathResult(
    redis_available=False, rate_limit=None, session_live=False, is_admin=False, cached_user=None
)


async def check_request(
    redis: Redis,
    *,
    limit_key: str,
    limit: int,
    period_seconds: float,
    session_key: str,
    user_id: uuid.UUID,
    user_key: str,
) -> FastPathResult:
    """Apply the rate limit, read the session marker and the cached user, in one call.

    The session counts as live only if its marker names user_id, the token's subject.
    """
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
    marker = reply[4]
    is_admin = marker == marker_value(user_id, is_admin=True)
    return FastPathResult(
        redis_available=True,
        rate_limit=decision_from_reply(reply[:4], limit, period_seconds),
        session_live=is_admin or marker == marker_value(user_id, is_admin=False),
        is_admin=is_admin,
        cached_user=reply[5],
    )


async def mark_session_live(
    redis: Redis, session_key: str, *, user_id: uuid.UUID, is_admin: bool, ttl_seconds: int
) -> bool:
    """Record a session just verified in PostgreSQL; False if not (revoked meanwhile, no Redis)."""
    try:
        # NX: never over a REVOKED tombstone (see above). The short TTL bounds
        # how long a marker outlives a revocation whose forget_sessions failed:
        # the durable state is always PostgreSQL's.
        value = marker_value(user_id, is_admin=is_admin)
        written = await redis.set(session_key, value, nx=True, ex=ttl_seconds)
    except REDIS_ERRORS as error:
        _log.warning("Redis is unavailable: a session marker was not written", error)
        return False
    return bool(written)


async def forget_sessions(
    redis: Redis, session_ids: Collection[uuid.UUID], *, ttl_seconds: int
) -> bool:
    """Replace the sessions' markers with REVOKED tombstones; False when Redis is unavailable."""
    if not session_ids:
        return True
    # Every key in one round trip; no MULTI: each SET stands on its own.
    pipeline = redis.pipeline(transaction=False)
    for session_id in session_ids:
        # As long as a marker lives: longer than any check that could still be in flight.
        pipeline.set(session_key(session_id), REVOKED, ex=ttl_seconds)
    try:
        await pipeline.execute()
    except REDIS_ERRORS as error:
        # Not throttled: every failed revocation matters, and they are rare.
        logger.error(
            "Redis is unavailable: %d revoked session(s) may stay admitted by their "
            "marker for up to %d seconds (%s).",
            len(session_ids),
            ttl_seconds,
            type(error).__name__,
        )
        return False
    return True


async def forget_session_markers(request: Request, session_ids: Collection[uuid.UUID]) -> None:
    """Stop Redis vouching for these sessions: call it right AFTER the commit that ends them.

    Before the commit, a request could still find the session live in
    PostgreSQL and mark it again. If Redis is unreachable from this replica,
    the markers stay for up to SESSION_MARKER_TTL_SECONDS, during which other
    replicas may still admit the sessions: logged (by forget_sessions) and counted.
    """
    state = request_state(request)
    ttl = state["settings"].session_marker_ttl_seconds
    if not await forget_sessions(state["redis"], session_ids, ttl_seconds=ttl):
        state["metrics"].session_marker_forget_failures.inc(len(session_ids))
        state["metrics"].redis_errors.labels("fastpath").inc()
