"""Rate limits: GCRA in one atomic Redis script shared by all replicas, with a local fallback."""

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from redis.asyncio import Redis

from app.redis_client import REDIS_ERRORS, ThrottledLog

logger = logging.getLogger("app.ratelimit")

# --8<-- [start:gcra]
# GCRA (the generic cell rate algorithm), the algorithm behind most token-bucket
# limiters. Why GCRA rather than a sliding-window log: it keeps ONE number per key
# (the "theoretical arrival time", TAT) instead of one entry per request, so every
# check is a GET and a SET whatever the limit, and memory does not grow with it.
# Semantics of "limit per period": a burst of up to `limit` requests, then one
# every period/limit; the key expires when the bucket is full again.
# Time comes from the Redis server (TIME), so replicas with skewed clocks agree.
# All times are integer microseconds: exact in Lua's doubles, and formatted with
# %d because Lua would print large numbers in scientific notation.
# Shared by ratelimit.py and session_markers.py: this string is the algorithm's one copy.
GCRA_LUA = """
local function rate_limit(key, limit, period_us)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local interval = math.ceil(period_us / limit)  -- the cost of one request
  local capacity = interval * limit              -- a full bucket: `limit` requests
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - capacity
  if now < allow_at then
    -- Refused: nothing is written, so hammering a closed limit costs no quota.
    return {0, allow_at - now, 0, tat - now}
  end
  redis.call('SET', key, string.format('%d', new_tat),
             'PX', string.format('%d', math.ceil((new_tat - now) / 1000)))
  return {1, 0, math.floor((capacity - (new_tat - now)) / interval), new_tat - now}
end
"""
# --8<-- [end:gcra]

# KEYS[1]: the limit key; ARGV: limit, period in microseconds.
_RATE_LIMIT_LUA = GCRA_LUA + "return rate_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n"


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one rate-limit check, with what a 429 and the RateLimit headers need."""

    allowed: bool
    limit: int
    period_seconds: float
    remaining: int
    # Seconds until the next request would be allowed (0 when this one was).
    retry_after: float
    # Seconds until the full quota is available again.
    reset_after: float
    # Redis was unavailable: this decision was not shared with the other replicas.
    degraded: bool = False

    @property
    def retry_after_seconds(self) -> int:
        """The Retry-After value: whole seconds, at least 1 (0 would invite an instant retry)."""
        return max(1, math.ceil(self.retry_after))


def rate_limit_headers(decision: RateLimitDecision, policy: str = "default") -> dict[str, str]:
    """Build the IETF draft RateLimit-Policy and RateLimit headers, and Retry-After if refused."""
    # Structured-field syntax of draft-ietf-httpapi-ratelimit-headers-10:
    # q = quota, w = window in seconds, r = remaining, t = seconds until the quota resets.
    headers = {
        "RateLimit-Policy": f'"{policy}";q={decision.limit};w={math.ceil(decision.period_seconds)}',
        "RateLimit": f'"{policy}";r={decision.remaining};t={math.ceil(decision.reset_after)}',
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after_seconds)
    return headers


def decision_from_reply(
    reply: Sequence[int], limit: int, period_seconds: float
) -> RateLimitDecision:
    """Turn the script's reply [allowed, retry_after_us, remaining, reset_us] into a decision."""
    return RateLimitDecision(
        allowed=reply[0] == 1,
        limit=limit,
        period_seconds=period_seconds,
        remaining=int(reply[2]),
        retry_after=reply[1] / 1_000_000,
        reset_after=reply[3] / 1_000_000,
    )


def period_microseconds(period_seconds: float) -> int:
    """The period as the script's integer microseconds."""
    return round(period_seconds * 1_000_000)


class RateLimitStats(Protocol):
    """Where a limiter reports checks it could not share through Redis (Prometheus, in the app)."""

    def degraded(self) -> None:
        """Count one check decided without Redis."""


class _NoStats:
    def degraded(self) -> None:
        pass


class LocalRateLimiter:
    """The same GCRA in process memory: the login limit's fallback while Redis is down."""

    def __init__(
        self, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # Least recently used first. Memory stays bounded: past max_keys the oldest key
        # is dropped, which at worst forgets the count of a client idle the longest.
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def hit(self, key: str, limit: int, period_seconds: float) -> RateLimitDecision:
        """Count one request against key; refuse it when the limit is reached."""
        # Line for line the Lua above, in the same integer microseconds, so both
        # limiters give the same answers (floats would drift: 3 * (1/3) > 1).
        now = round(self._clock() * 1_000_000)
        period_us = period_microseconds(period_seconds)
        interval = -(-period_us // limit)  # ceil
        capacity = interval * limit
        tat = max(self._tats.get(key, now), now)
        new_tat = tat + interval
        allow_at = new_tat - capacity
        if now < allow_at:
            reply = (0, allow_at - now, 0, tat - now)
        else:
            self._tats[key] = new_tat
            self._tats.move_to_end(key)
            if len(self._tats) > self._max_keys:
                self._tats.popitem(last=False)
            reply = (1, 0, (capacity - (new_tat - now)) // interval, new_tat - now)
        return replace(decision_from_reply(reply, limit, period_seconds), degraded=True)

    def __len__(self) -> int:
        """How many keys are tracked (bounded by max_keys)."""
        return len(self._tats)


class RedisRateLimiter:
    """A limit shared by every replica: one atomic script per check.

    Redis unavailable: with a `fallback`, the check is made by that per-process
    limiter (the login limit: never no limit); without one, the request is
    allowed (the general limit fails open: an outage of the cache must not
    become an outage of the API). Either way it is counted and logged.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        fallback: LocalRateLimiter | None = None,
        stats: RateLimitStats | None = None,
        log_interval_seconds: float = 60.0,
    ) -> None:
        # Registered once: each check sends the script's SHA1 (EVALSHA), not its source.
        self._script = redis.register_script(_RATE_LIMIT_LUA)
        self._fallback = fallback
        self._stats = stats or _NoStats()
        self._log = ThrottledLog(logger, log_interval_seconds)

    async def hit(self, key: str, limit: int, period_seconds: float) -> RateLimitDecision:
        """Count one request against key (built by the caller from client and route class)."""
        try:
            reply = await self._script(
                keys=[key], args=[limit, period_microseconds(period_seconds)]
            )
        except REDIS_ERRORS as error:
            self._stats.degraded()
            if self._fallback is not None:
                self._log.warning("Redis is unavailable: rate limits are per process", error)
                return self._fallback.hit(key, limit, period_seconds)
            self._log.warning("Redis is unavailable: the rate limit is not enforced", error)
            return fail_open_decision(limit, period_seconds)
        return decision_from_reply(reply, limit, period_seconds)


def fail_open_decision(limit: int, period_seconds: float) -> RateLimitDecision:
    """The decision when nothing could be counted: allowed, full quota, marked degraded."""
    return RateLimitDecision(
        allowed=True,
        limit=limit,
        period_seconds=period_seconds,
        remaining=limit,
        retry_after=0.0,
        reset_after=0.0,
        degraded=True,
    )
