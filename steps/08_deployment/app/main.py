"""The FastAPI application: its factory and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.cache import UserCache
from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker
from app.errors import install_error_handlers
from app.logging import configure_logging, flush_logs
from app.metrics import CacheMetrics, Metrics, RateLimitMetrics
from app.middleware import install_middleware
from app.openapi import install_openapi
from app.ratelimit import LocalRateLimiter, RedisRateLimiter
from app.redis_client import create_redis
from app.routes import auth, health, metrics, users
from app.security import PasswordHasher
from app.state import State


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings instead of patching modules."""
    settings = settings or get_settings()
    configure_logging(settings)
    # One registry per app: several apps in one process (tests) never collide.
    instruments = Metrics()
    # One per app: it holds the Argon2id cost these settings chose, and the
    # limit on concurrent hashing that every route shares.
    password_hasher = PasswordHasher(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        """Open the shared clients at start-up, lend them to requests, close them at shutdown."""
        # No connection is opened here: both pools connect on first use, so the
        # process starts (and /health/ready reports 503) while PostgreSQL is
        # down, and serves without its cache while Redis is.
        # The exit stack closes what it was given in reverse order. uvicorn
        # runs that after in-flight requests have finished (or
        # --timeout-graceful-shutdown has passed), so no call loses its connection.
        async with AsyncExitStack() as resources:
            # Registered first, so it runs last: it writes out the lines shutdown logs.
            resources.callback(flush_logs)
            engine = create_engine(settings)
            resources.push_async_callback(engine.dispose)
            redis = create_redis(
                settings.redis_url,
                socket_timeout=settings.redis_socket_timeout_seconds,
                connect_timeout=settings.redis_connect_timeout_seconds,
                health_check_interval=settings.redis_health_check_interval_seconds,
                max_connections=settings.redis_max_connections,
            )
            resources.push_async_callback(redis.aclose)
            cache_stats, limiter_stats = CacheMetrics(instruments), RateLimitMetrics(instruments)
            yield {
                "settings": settings,
                "engine": engine,
                "sessionmaker": create_sessionmaker(engine),
                "redis": redis,
                "user_cache": (
                    UserCache(redis, ttl_seconds=settings.cache_ttl_seconds, stats=cache_stats)
                    if settings.cache_enabled
                    else None
                ),
                "api_limiter": RedisRateLimiter(redis, stats=limiter_stats),
                "login_limiter": RedisRateLimiter(
                    redis, fallback=LocalRateLimiter(), stats=limiter_stats
                ),
                "metrics": instruments,
                "password_hasher": password_hasher,
            }

    app = FastAPI(
        title="Workshop user service",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry hooks are on by default: they cost 5-7%
        # per request with no provider set, and start tracing every request as
        # soon as an OTel SDK is configured. This service exposes Prometheus
        # metrics instead; turn tracing on deliberately if you want it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_middleware(app, settings, instruments)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Every /api/v1 request counts once against the general per-client limit:
    # authenticated routes in their token check (one Redis call with the session
    # check, app/deps.py), the anonymous ones (sign-up, login, refresh) through
    # enforce_api_limit on the route itself. Never both: that would count twice.
    app.include_router(users.router)
    app.include_router(auth.router)
    install_openapi(app)
    return app


app = create_app()
