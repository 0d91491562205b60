"""The FastAPI application: its factory and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.middleware import install_middleware
from app.routes import health
from app.state import State


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; tests pass their own settings instead of patching modules."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        """Open the shared clients at start-up, lend them to requests, close them at shutdown."""
        # Nothing to open yet: clients opened here are handed out in the state
        # and closed after the yield, in reverse order.
        yield {"settings": settings}

    app = FastAPI(
        title="Workshop user service",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry hooks are on by default: they cost 5-7%
        # per request with no provider set, and start tracing every request as
        # soon as an OTel SDK is configured. Telemetry is a decision, made later.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(health.router)
    install_middleware(app, settings)
    return app


app = create_app()
