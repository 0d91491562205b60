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
