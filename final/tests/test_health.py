"""Liveness and readiness probes."""

import socket

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import make_settings, open_client

from app.main import create_app


async def test_liveness_returns_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"]


async def test_readiness_with_database_up_returns_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok"}}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


@pytest.fixture
def app_with_database_down() -> FastAPI:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere"
    return create_app(make_settings(database_url=url, health_check_timeout_seconds=1.0))


async def test_readiness_with_database_down_returns_503_and_liveness_stays_ok(
    app_with_database_down: FastAPI,
) -> None:
    async for client in open_client(app_with_database_down):
        ready = await client.get("/health/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json() == {"status": "unavailable", "checks": {"database": "unavailable"}}
        live = await client.get("/health/live")
        assert live.status_code == 200, live.text


async def test_api_with_database_down_returns_503_problem(app_with_database_down: FastAPI) -> None:
    async for client in open_client(app_with_database_down):
        r = await client.post(
            "/api/v1/users", json={"email": "down@example.com", "password": "long enough"}
        )
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "down@example.com" not in r.text
