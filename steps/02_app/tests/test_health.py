"""The liveness route and the lifespan state behind every request."""

import httpx
import pytest
from fastapi import FastAPI, Request

from app.config import Settings
from app.state import request_state

pytestmark = pytest.mark.task("app-factory")


async def test_live_returns_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


async def test_requests_see_the_settings_from_the_lifespan_state(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    @app.get("/test/environment")
    async def environment(request: Request) -> dict[str, str]:
        """Report the environment of the settings the request was given."""
        request_settings = request_state(request)["settings"]
        assert request_settings is settings
        return {"environment": request_settings.environment}

    response = await client.get("/test/environment")

    assert response.status_code == 200, response.text
    assert response.json() == {"environment": "test"}


async def test_otel_hooks_are_off(app: FastAPI) -> None:
    # FastAPI has no public accessor for the effective telemetry configuration.
    telemetry = app._telemetry

    assert (telemetry["tracing"], telemetry["metrics"], telemetry["logs"]) == (False, False, False)
