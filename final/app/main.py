"""The application factory and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker
from app.errors import install_error_handlers
from app.logging import configure_logging
from app.metrics import Metrics
from app.middleware import install_middleware
from app.routes import health, metrics, users


class State(TypedDict):
    """What the lifespan shares with every request (read as request.state.<name>)."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings instead of patching modules."""
    settings = settings or get_settings()
    configure_logging(settings)

    # --8<-- [start:lifespan]
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        """Create the shared clients at start-up and close them, in reverse order, at shutdown."""
        # No connection is opened here: the pool connects on first use, so the
        # process starts (and /health/ready reports 503) while PostgreSQL is down.
        engine = create_engine(settings)
        try:
            yield {
                "settings": settings,
                "engine": engine,
                "sessionmaker": create_sessionmaker(engine),
            }
        finally:
            # uvicorn runs this after in-flight requests have finished (or
            # --timeout-graceful-shutdown has passed), so no query loses its connection.
            await engine.dispose()

    # --8<-- [end:lifespan]

    app = FastAPI(
        title="Workshop user service",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry hooks cost 5-7% per request even with
        # no provider, and trace every request once an SDK is configured. We
        # expose Prometheus metrics instead; turn tracing on deliberately if you want it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # One registry per app: several apps in one process (tests) never collide.
    app.state.metrics = Metrics()
    install_error_handlers(app)
    install_middleware(app, settings, app.state.metrics)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(users.router)
    return app


app = create_app()
