"""Liveness, readiness with its database and Redis checks, and the lifespan state."""

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import make_settings, open_client

from app.config import Settings
from app.main import create_app
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


@pytest.mark.task("redis-client")
async def test_ready_with_the_database_up_returns_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def closed_port_url() -> str:
    """A database URL whose port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The socket is closed on leaving the block: connecting is refused at once.
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nowhere"


@pytest.fixture
async def silent_database_url() -> AsyncIterator[str]:
    """A URL whose server accepts connections and never says a word: a hung database."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nowhere"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.task("redis-client")
@pytest.mark.usefixtures("redis")
async def test_ready_with_the_database_port_closed_returns_503_and_live_stays_200() -> None:
    # The lifespan opens no connection, so the app starts while the database is down.
    app = create_app(make_settings(database_url=closed_port_url()))

    async for client in open_client(app):
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")

    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"] == {"database": "unavailable", "redis": "ok"}
    assert ready.json()["detail"]
    assert live.status_code == 200, live.text


@pytest.mark.task("redis-client")
@pytest.mark.usefixtures("redis")
async def test_ready_gives_up_on_a_database_that_never_answers_after_its_timeout(
    silent_database_url: str,
) -> None:
    # The connect timeout is an hour: only the readiness check's own timeout can end this.
    app = create_app(
        make_settings(
            database_url=silent_database_url,
            db_connect_timeout_seconds=3600,
            health_check_timeout_seconds=0.2,
        )
    )

    async for client in open_client(app):
        # Not a speed check: a guard, so that a missing timeout fails the test
        # instead of hanging the run for an hour.
        async with asyncio.timeout(30):
            ready = await client.get("/health/ready")
        live = await client.get("/health/live")

    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"] == {"database": "unavailable", "redis": "ok"}
    assert live.status_code == 200, live.text


APP_CONNECTIONS = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = :name"
)


@pytest.mark.task("redis-client")
async def test_shutdown_closes_the_pooled_connections(database: str) -> None:
    observer = create_async_engine(database, poolclass=NullPool)
    try:
        async with observer.connect() as connection:
            # Connections open before this app starts are not its own: an earlier
            # test's app whose test failed mid-request may not have shut down yet.
            before = await connection.scalar(APP_CONNECTIONS, {"name": "workshop-final"})
            await connection.rollback()
            app = create_app(make_settings(database_url=database))
            async for client in open_client(app):
                assert (await client.get("/health/ready")).status_code == 200

            # The server notices a closed connection a moment after the client
            # closed it: wait for that, within a bound, rather than for a fixed time.
            for _ in range(200):
                left = await connection.scalar(APP_CONNECTIONS, {"name": "workshop-final"})
                await connection.rollback()  # a fresh snapshot of pg_stat_activity
                left -= before
                if left <= 0:
                    break
                await asyncio.sleep(0.05)
    finally:
        await observer.dispose()
    assert left <= 0, f"{left} connections of the app are still open after its shutdown"
