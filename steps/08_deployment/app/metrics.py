"""Prometheus instruments, registered on a registry owned by one app."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The service's instruments; each app gets its own registry, so test apps never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request reaching the app to the end of the response.",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.db_pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of the pool right now.",
            registry=self.registry,
        )
        # Counted by the Redis cache; registered up front so dashboards see zeros, not gaps.
        self.cache_hits = Counter(
            "cache_hits", "User reads answered from Redis.", registry=self.registry
        )
        self.cache_misses = Counter(
            "cache_misses", "User reads that had to go to PostgreSQL.", registry=self.registry
        )
        # Redis, cache and rate limits
        self.cache_errors = Counter(
            "cache_errors",
            "Cache calls Redis did not answer (the read went to PostgreSQL instead).",
            registry=self.registry,
        )
        self.rate_limit_decisions = Counter(
            "rate_limit_decisions",
            "Rate-limit checks by route class and outcome: allowed, limited or degraded "
            "(decided without Redis).",
            ["route_class", "outcome"],
            registry=self.registry,
        )
        # The token fast path: which path served each session check, and the
        # revocations whose marker may outlive them (see app/session_markers.py).
        self.auth_checks = Counter(
            "auth_checks",
            "Bearer-token session checks by what answered them: redis (a live session "
            "marker) or database (PostgreSQL).",
            ["source"],
            registry=self.registry,
        )
        for source in ("redis", "database"):
            self.auth_checks.labels(source)
        self.session_marker_forget_failures = Counter(
            "session_marker_forget_failures",
            "Revoked sessions whose fast-path marker Redis did not delete: each may still "
            "be admitted until the marker's TTL (SESSION_MARKER_TTL_SECONDS).",
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "redis_errors",
            "Redis calls that failed or timed out, by what made them.",
            ["component"],
            registry=self.registry,
        )


class CacheMetrics:
    """The cache's CacheStats, counted in Prometheus."""

    def __init__(self, metrics: Metrics) -> None:
        self._hits = metrics.cache_hits
        self._misses = metrics.cache_misses
        self._errors = metrics.cache_errors
        self._redis_errors = metrics.redis_errors.labels("cache")

    def hit(self) -> None:
        """Count a read answered from Redis."""
        self._hits.inc()

    def miss(self) -> None:
        """Count a read answered by PostgreSQL."""
        self._misses.inc()

    def error(self) -> None:
        """Count a cache call Redis did not answer."""
        self._errors.inc()
        self._redis_errors.inc()


class RateLimitMetrics:
    """A limiter's RateLimitStats, counted in Prometheus."""

    def __init__(self, metrics: Metrics) -> None:
        self._redis_errors = metrics.redis_errors.labels("ratelimit")

    def degraded(self) -> None:
        """Count a check Redis did not answer."""
        self._redis_errors.inc()
