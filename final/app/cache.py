"""Cache-aside for user reads: versioned keys, jittered TTLs, single flight, no stale writes."""

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

from redis.asyncio import Redis

from app.redis_client import REDIS_ERRORS, ThrottledLog

logger = logging.getLogger("app.cache")

# Bump when the cached JSON's shape changes (a field added, renamed or removed):
# new code then never reads an entry written by old code. During a rolling
# deploy, old replicas still invalidate only their own version's keys, so a
# write they handle can leave the new version's entry stale for one TTL.
CACHE_VERSION = 1


def user_key(user_id: str, version: int = CACHE_VERSION) -> str:
    """The Redis key of a user's cached JSON."""
    return f"v{version}:user:{user_id}"


# Loads the public user's JSON from PostgreSQL; None when there is no such user
# (not cached: a miss costs one query, and no tombstones pile up).
Loader = Callable[[], Awaitable[bytes | None]]

# --8<-- [start:scripts]
# Stale-value protection. A reader that misses, queries PostgreSQL and then writes
# back can lose a race with a writer: reader reads the old row, writer commits and
# invalidates, reader writes the old row back, and it stays for a whole TTL.
# So every key has a generation beside it: invalidate() replaces it with a random
# value, and a write-back only happens if it is still what the reader saw BEFORE
# its query. Random, not a counter: an INCR on a counter that expired restarts at
# 1, a value a slow reader may have seen, and its stale row would be accepted.
# A value written back from a read that raced a write is therefore either refused
# or, if it landed before the invalidation, deleted by it: stale at most from the
# commit to its invalidation. (If Redis is down during the invalidation,
# the TTL is the bound, which is why it is short.)

# KEYS[1] value, KEYS[2] generation. ARGV[1] generation seen before the query
# ('' for none), ARGV[2] value, ARGV[3] TTL in milliseconds.
_STORE_IF_NOT_INVALIDATED_LUA = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS[1] value, KEYS[2] generation. ARGV[1] the new generation (random, never
# seen before), ARGV[2] its TTL in milliseconds: it must outlive any load in
# progress, or an expired generation would read '' again.
_INVALIDATE_LUA = """
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('DEL', KEYS[1])
"""

# Delete the lock only if it still holds our token: after our lock expired,
# another replica may hold it, and a plain DEL would release theirs.
_RELEASE_LOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# --8<-- [end:scripts]


class CacheStats(Protocol):
    """Where the cache reports what it did (Prometheus counters, in the app)."""

    def hit(self) -> None:
        """Count a read answered from Redis."""

    def miss(self) -> None:
        """Count a read answered by the loader."""

    def error(self) -> None:
        """Count a Redis call that failed (the cache fell back or skipped a write)."""


class _NoStats:
    def hit(self) -> None:
        pass

    def miss(self) -> None:
        pass

    def error(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class CacheRead:
    """One look-up: the cached value if any, and the generation to pass back to set()."""

    value: bytes | None
    generation: bytes
    # False: Redis did not answer, so there is nothing to compare a write-back against.
    available: bool


_UNAVAILABLE = CacheRead(value=None, generation=b"", available=False)


def _consume_exception(future: asyncio.Future[tuple[bytes | None, bool]]) -> None:
    # A load that failed with nobody else waiting must not log "exception never retrieved".
    if not future.cancelled():
        future.exception()


class UserCache:
    """The public user's JSON bytes in Redis, keyed by user id."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: float,
        jitter: float = 0.1,
        version: int = CACHE_VERSION,
        lock_ttl_seconds: float = 5.0,
        lock_wait_seconds: float = 0.5,
        lock_poll_seconds: float = 0.025,
        stats: CacheStats | None = None,
        log_interval_seconds: float = 60.0,
    ) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._jitter = jitter
        self._version = version
        # A lock holder that died frees the key after this long.
        self._lock_ttl_ms = round(lock_ttl_seconds * 1000)
        # How long another replica's load is awaited before loading ourselves.
        self._lock_wait = lock_wait_seconds
        self._lock_poll = lock_poll_seconds
        # As long as any value can live, and far longer than any load.
        self._generation_ttl_ms = round(max(ttl_seconds * (1 + jitter), lock_ttl_seconds) * 1000)
        self._stats = stats or _NoStats()
        self._log = ThrottledLog(logger, log_interval_seconds)
        self._store = redis.register_script(_STORE_IF_NOT_INVALIDATED_LUA)
        self._invalidate = redis.register_script(_INVALIDATE_LUA)
        self._release_lock = redis.register_script(_RELEASE_LOCK_LUA)
        # Single flight within the process: one load per key, every caller awaits it.
        self._in_flight: dict[str, asyncio.Future[tuple[bytes | None, bool]]] = {}

    def key(self, user_id: str) -> str:
        """The Redis key of a user's cached JSON."""
        return user_key(user_id, self._version)

    def count_hit(self) -> None:
        """Count a hit that the token fast path read from key() in its own script."""
        self._stats.hit()

    def ttl_milliseconds(self) -> int:
        """A fresh TTL: the configured one plus or minus the jitter."""
        # Jitter spreads the expiry of entries written together (after a deploy,
        # a flush) so they do not all miss, and hit PostgreSQL, in the same second.
        factor = random.uniform(1 - self._jitter, 1 + self._jitter)  # noqa: S311 - not a secret
        return max(1, round(self._ttl * 1000 * factor))

    async def read(self, user_id: str) -> CacheRead:
        """Look a user up, with the generation a later set() must match; never raises."""
        key = self.key(user_id)
        try:
            value, generation = await self._mget(key, key + ":gen")
        except REDIS_ERRORS as error:
            self._failed("Redis is unavailable: user reads go to PostgreSQL", error)
            return _UNAVAILABLE
        return CacheRead(value=value, generation=generation or b"", available=True)

    async def get(self, user_id: str) -> bytes | None:
        """The cached JSON, or None on a miss or when Redis is unavailable."""
        value = (await self.read(user_id)).value
        self._count(from_cache=value is not None)
        return value

    async def set(self, user_id: str, value: bytes, since: CacheRead) -> bool:
        """Store a value loaded after `since`, unless the user was invalidated in between."""
        if not since.available:
            return False
        key = self.key(user_id)
        try:
            stored = await self._store(
                keys=[key, key + ":gen"], args=[since.generation, value, self.ttl_milliseconds()]
            )
        except REDIS_ERRORS as error:
            self._failed("Redis is unavailable: a user was not cached", error)
            return False
        return bool(stored)

    async def invalidate(self, user_id: str) -> bool:
        """Drop a user's entry; call it after the commit of every write to that user."""
        key = self.key(user_id)
        # A load in flight may have read the row before this write: a read that
        # starts from now on must not join it, or a client could be told of the
        # write and then read the old row. (Its own write-back is refused below.)
        self._in_flight.pop(key, None)
        try:
            await self._invalidate(
                keys=[key, key + ":gen"], args=[secrets.token_hex(16), self._generation_ttl_ms]
            )
        except REDIS_ERRORS as error:
            # The entry may now be stale until its TTL runs out: log it, count it.
            self._failed("Redis is unavailable: a user's cache entry was not invalidated", error)
            return False
        return True

    async def get_or_load(self, user_id: str, loader: Loader) -> bytes | None:
        """The cached JSON, or the loader's, with one load per key however many callers miss."""
        key = self.key(user_id)
        future = self._in_flight.get(key)
        if future is None:
            value, from_cache = await self._lead(key, user_id, loader)
        else:
            value, from_cache = await self._follow(future, loader)
        self._count(from_cache=from_cache)
        return value

    async def _lead(self, key: str, user_id: str, loader: Loader) -> tuple[bytes | None, bool]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bytes | None, bool]] = loop.create_future()
        future.add_done_callback(_consume_exception)
        self._in_flight[key] = future
        try:
            result = await self._read_or_load(key, user_id, loader)
        except Exception as error:
            future.set_exception(error)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            # Unless an invalidation dropped it, and a newer load took its place.
            if self._in_flight.get(key) is future:
                del self._in_flight[key]
            # Cancelled (the client went away): followers see it and load for themselves.
            if not future.done():
                future.cancel()

    async def _follow(
        self, future: asyncio.Future[tuple[bytes | None, bool]], loader: Loader
    ) -> tuple[bytes | None, bool]:
        try:
            # shield: our own cancellation must not cancel the leader's shared future.
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and not task.cancelling():
                return await loader(), False
            raise

    async def _read_or_load(
        self, key: str, user_id: str, loader: Loader
    ) -> tuple[bytes | None, bool]:
        seen = await self.read(user_id)
        if seen.value is not None:
            return seen.value, True
        if not seen.available:
            return await loader(), False
        # Across replicas: a short lock, so one replica queries and the others wait.
        lock_key = key + ":lock"
        token = secrets.token_hex(16)
        try:
            locked = await self._redis.set(lock_key, token, nx=True, px=self._lock_ttl_ms)
        except REDIS_ERRORS as error:
            self._failed("Redis is unavailable: user reads go to PostgreSQL", error)
            return await loader(), False
        if not locked:
            return await self._wait_for_other_replica(key, user_id, loader, seen)
        try:
            value = await loader()
            if value is not None:
                await self.set(user_id, value, seen)
        finally:
            try:
                await self._release_lock(keys=[lock_key], args=[token])
            except REDIS_ERRORS as error:
                # It expires after lock_ttl_seconds; until then other replicas wait, then load.
                self._failed("Redis is unavailable: a cache lock was not released", error)
        return value, False

    async def _wait_for_other_replica(
        self, key: str, user_id: str, loader: Loader, seen: CacheRead
    ) -> tuple[bytes | None, bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_wait
        while loop.time() < deadline:
            await asyncio.sleep(self._lock_poll)
            try:
                value, lock = await self._mget(key, key + ":lock")
            except REDIS_ERRORS as error:
                self._failed("Redis is unavailable: user reads go to PostgreSQL", error)
                break
            if value is not None:
                return value, True
            if lock is None:
                # The holder finished without caching (no such user, or invalidated).
                break
        # A waiter never fails: past the wait (a slow or dead holder), it loads itself.
        # So at most one load per replica runs at once for a key.
        value = await loader()
        if value is not None:
            await self.set(user_id, value, seen)
        return value, False

    async def _mget(self, *keys: str) -> list[bytes | None]:
        # The client is created without decode_responses: values are bytes.
        return cast(list[bytes | None], await self._redis.mget(keys))

    def _count(self, *, from_cache: bool) -> None:
        if from_cache:
            self._stats.hit()
        else:
            self._stats.miss()

    def _failed(self, message: str, error: BaseException) -> None:
        self._stats.error()
        self._log.warning(message, error)
