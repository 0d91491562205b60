"""The login limit: per client and per account, and never off, even without Redis."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import PASSWORD, UserFactory, assert_problem, make_settings, open_client

from app.config import Settings
from app.main import create_app

# Every test starts from a flushed Redis: no count leaks in from another test.
pytestmark = pytest.mark.usefixtures("redis")

TOKEN = "/api/v1/auth/token"
WRONG_PASSWORD = "not the password"


@asynccontextmanager
async def running(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with these settings."""
    async for client in open_client(create_app(settings), {"sessionmaker": sessionmaker}):
        yield client


async def log_in(
    client: httpx.AsyncClient, email: str, password: str = WRONG_PASSWORD, **options: Any
) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password}, **options)


async def test_the_login_after_the_limit_gets_429_with_retry_after(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory
) -> None:
    ada = await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        attempts = [(await log_in(client, ada.email)).status_code for _ in range(3)]
        refused = await log_in(client, ada.email, PASSWORD)  # even the right password

    assert attempts == [401] * 3
    body = assert_problem(refused, 429)
    assert "try again in 20 seconds" in body["detail"]
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["ratelimit-policy"] == '"login";q=3;w=60'


async def test_a_correct_login_within_the_limit_succeeds(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory
) -> None:
    ada = await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        await log_in(client, ada.email)
        r = await log_in(client, ada.email, PASSWORD)

    assert r.status_code == 200, r.text


async def test_one_account_is_limited_across_client_addresses(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        seen = [
            (
                await log_in(
                    client, "ada@example.com", headers={"X-Forwarded-For": f"203.0.113.{n}"}
                )
            ).status_code
            for n in range(3)
        ]

    assert seen == [401, 401, 429]


async def test_one_client_is_limited_across_accounts(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(login_rate_limit="2/minute"), sessionmaker) as client:
        seen = [(await log_in(client, f"user{n}@example.com")).status_code for n in range(3)]

    assert seen == [401, 401, 429]


async def test_without_redis_logins_are_still_limited_by_the_process(
    sessionmaker: async_sessionmaker[AsyncSession], closed_port_url: str
) -> None:
    settings = make_settings(
        login_rate_limit="2/minute", redis_url=closed_port_url, redis_socket_timeout_seconds=0.3
    )
    async with running(settings, sessionmaker) as client:
        seen = [(await log_in(client, "ada@example.com")).status_code for _ in range(3)]
        metrics = (await client.get("/metrics")).text

    assert seen == [401, 401, 429]
    assert 'rate_limit_decisions_total{outcome="limited",route_class="login"} 1.0' in metrics
