"""The FastAPI application: its factory and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.db import create_engine, create_sessionmaker
from app.errors import install_error_handlers
from app.middleware import install_middleware
from app.routes import health, users
from app.security import PasswordHasher
from app.state import State


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings instead of patching modules."""
    settings = settings or get_settings()
    # One per app: it holds the Argon2id cost these settings chose.
    password_hasher = PasswordHasher(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        """Open the shared clients at start-up, lend them to requests, close them at shutdown."""
        # No connection is opened here: the pool connects on first use, so the
        # process starts (and /health/ready reports 503) while PostgreSQL is down.
        # The exit stack closes what it was given in reverse order. uvicorn
        # runs that after in-flight requests have finished (or
        # --timeout-graceful-shutdown has passed), so no query loses its connection.
        async with AsyncExitStack() as resources:
            engine = create_engine(settings)
            resources.push_async_callback(engine.dispose)
            yield {
                "settings": settings,
                "engine": engine,
                "sessionmaker": create_sessionmaker(engine),
                "password_hasher": password_hasher,
            }

    app = FastAPI(
        title="Workshop user service",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry hooks are on by default: they cost 5-7%
        # per request with no provider set, and start tracing every request as
        # soon as an OTel SDK is configured. Telemetry is a decision, made later.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(users.router)
    install_middleware(app, settings)
    return app


app = create_app()
