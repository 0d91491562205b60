"""The Redis client: one bounded connection pool, and what counts as "Redis is unavailable"."""

import builtins
import logging
import time

from redis import exceptions as redis_exceptions
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import DefaultParser
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo


class RedisRefusedError(redis_exceptions.ResponseError):
    """Redis answered, but refuses commands for now: it cannot serve, as if it were down."""


# The reply codes of those refusals that redis-py reports as a plain ResponseError:
# MISCONF, writes (and PING) refused after a failed snapshot (a full disk); BUSY,
# a script or module command running past its time limit; NOREPLICAS, too few
# replicas for min-replicas-to-write.
REFUSAL_CODES = ("MISCONF", "BUSY", "NOREPLICAS")

# redis-py turns an error reply into an exception by its first word; this parser
# knows the refusals too. An error reply is parsed before any caller sees it,
# so commands, scripts, pipelines and the connection's own health checks all
# raise RedisRefusedError for them.
RefusalAwareParser = type(
    "RefusalAwareParser",
    (DefaultParser,),
    {
        "EXCEPTION_CLASSES": {
            **DefaultParser.EXCEPTION_CLASSES,
            **dict.fromkeys(REFUSAL_CODES, RedisRefusedError),
        }
    },
)

# The errors that mean "Redis cannot answer right now": every caller catches exactly
# these and falls back (PostgreSQL, the local limiter, failing open). Anything else,
# a ResponseError from a broken script ("ERR user_script:1: ...") for instance, is
# a bug and must surface.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    # Refused, reset or dropped connections; BusyLoadingError (LOADING after a restart),
    # MaxConnectionsError and a pool wait timing out are all subclasses.
    redis_exceptions.ConnectionError,
    redis_exceptions.BusyLoadingError,
    # No answer within socket_timeout / socket_connect_timeout.
    redis_exceptions.TimeoutError,
    # A replica promoted badly or a primary without a quorum refuses writes.
    redis_exceptions.ReadOnlyError,
    # maxmemory with the noeviction policy refuses writes: a full cache is an absent one.
    redis_exceptions.OutOfMemoryError,
    # MISCONF, BUSY, NOREPLICAS (above), and a primary that lost its link or its cluster.
    RedisRefusedError,
    redis_exceptions.MasterDownError,
    redis_exceptions.ClusterDownError,
    redis_exceptions.TryAgainError,
    # Raw socket and asyncio errors that can escape the client (TimeoutError is
    # asyncio.TimeoutError since Python 3.11; both are OSError subclasses anyway).
    builtins.ConnectionError,
    builtins.TimeoutError,
    OSError,
)


# redis-py reads its own version from the installed package's metadata (file
# system calls) for every connection it opens, to name itself in CLIENT SETINFO.
# Read once here, at import, instead of on the event loop under load.
_DRIVER_INFO = DriverInfo()


def create_redis(
    url: str,
    *,
    socket_timeout: float,
    connect_timeout: float,
    health_check_interval: int,
    max_connections: int,
) -> Redis:
    """Create the one Redis client of the process, with bounded timeouts and pool size."""
    # Not BlockingConnectionPool: its wait for a free connection (a lock and a
    # timeout around every checkout) cost each call 10-13 µs more CPU
    # (bench/redis_calls.py). Past max_connections this pool raises
    # MaxConnectionsError at once, a ConnectionError: the caller takes the same
    # fallback as for an unreachable Redis, without waiting for it first.
    pool = ConnectionPool.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        # Idle pooled connections are PINGed before reuse after this many seconds,
        # so a connection a restarted Redis dropped is replaced instead of failing a request.
        health_check_interval=health_check_interval,
        # redis-py's default retries 10 times with backoff up to 1 s: a slow Redis
        # would hold each request for seconds. We retry once, at once, and only on
        # a broken connection (a stale pooled socket; the retry gets a fresh one).
        # Timeouts are never retried: a slow Redis costs one socket_timeout, then
        # the caller falls back to PostgreSQL.
        retry=Retry(NoBackoff(), retries=1, supported_errors=(redis_exceptions.ConnectionError,)),
        driver_info=_DRIVER_INFO,
        parser_class=RefusalAwareParser,
    )
    # from_pool: the client owns the pool and closes it in aclose().
    return Redis.from_pool(pool)


class ThrottledLog:
    """Log a recurring failure at most once per interval, counting the lines held back."""

    def __init__(self, logger: logging.Logger, interval_seconds: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._next_allowed = 0.0
        self._suppressed = 0

    def warning(self, message: str, error: BaseException) -> None:
        """Log message with the error's type, unless a line went out less than an interval ago."""
        now = time.monotonic()
        if now < self._next_allowed:
            # During an outage every request fails the same way: one line per interval
            # says it all, and a flooded log would hide everything else.
            self._suppressed += 1
            return
        self._logger.warning(
            "%s (%s: %s; %d similar messages suppressed since the last one).",
            message,
            type(error).__name__,
            error,
            self._suppressed,
        )
        self._next_allowed = now + self._interval
        self._suppressed = 0
