"""The FastAPI application: its factory and its lifespan."""

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

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
from app.routes.docs import install_docs
from app.security import PasswordHasher
from app.state import State


# --8<-- [start:gc_freeze]
@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Keep the objects start-up made out of the garbage collector's full collections.

    Modules, classes, the app and its clients live as long as the process, yet
    every full (generation 2) collection walks them all: under load that was
    a 50-100 ms stall of the event loop every few seconds, most of the p99
    (docs/performance.md). gc.freeze() moves them to a generation that
    collections skip; objects made later are collected as usual.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # tests build many apps in one process: let theirs be collected


# --8<-- [end:gc_freeze]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings instead of patching modules."""
    settings = settings or get_settings()
    configure_logging(settings)
    # One registry per app: several apps in one process (tests) never collide.
    instruments = Metrics()
    # One per app: it holds the Argon2id cost these settings chose, and the
    # limit on concurrent hashing that every route shares.
    password_hasher = PasswordHasher(settings)

    # --8<-- [start:lifespan]
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
            state: State = {
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
            # Last: everything start-up made is now in place.
            resources.enter_context(startup_objects_frozen())
            yield state

    # --8<-- [end:lifespan]

    app = FastAPI(
        title="Workshop user service",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry hooks are on by default: they cost 5-7%
        # per request with no provider set, and start tracing every request as
        # soon as an OTel SDK is configured. This service exposes Prometheus
        # metrics instead; turn tracing on deliberately if you want it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Replaced by install_docs: FastAPI's own pages load their scripts from a CDN.
        docs_url=None,
        redoc_url=None,
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
    install_docs(app)
    install_openapi(app)
    return app


app = create_app()
