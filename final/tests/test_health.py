"""Liveness and readiness probes."""

import socket

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from tests.conftest import assert_problem, make_settings, open_client
from tests.redis_fixtures import redis_paused

from app.main import create_app


async def test_liveness_returns_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"]


async def test_readiness_with_database_and_redis_up_returns_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_readiness_with_redis_down_is_degraded_but_200(closed_port_url: str) -> None:
    app = create_app(make_settings(redis_url=closed_port_url, redis_socket_timeout_seconds=0.3))
    async for client in open_client(app):
        r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "degraded", "checks": {"database": "ok", "redis": "unavailable"}}


async def test_readiness_while_redis_is_paused_is_degraded_but_200(redis: Redis) -> None:
    app = create_app(make_settings(redis_socket_timeout_seconds=0.2))
    async for client in open_client(app):
        before = await client.get("/health/ready")
        async with redis_paused():
            during = await client.get("/health/ready")
        after = await client.get("/health/ready")
    assert during.status_code == 200, during.text
    assert during.json()["checks"] == {"database": "ok", "redis": "unavailable"}
    assert before.json()["status"] == after.json()["status"] == "ok"


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
        # A problem like every other error, with the checks as an extension member.
        body = assert_problem(ready, 503)
        assert body["checks"] == {"database": "unavailable", "redis": "ok"}
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
