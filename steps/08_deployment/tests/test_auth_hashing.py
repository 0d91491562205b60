"""Password hashing at production cost: off the event loop, bounded, refused beyond the bound."""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from tests.conftest import PASSWORD, delete_all_users, make_settings, open_client, sign_up

from app.config import Settings
from app.main import create_app

# The production defaults (PERFORMANCE.md: 80-100 ms and 130-160 ms of CPU per hash).
PRODUCTION_ARGON2 = {"argon2_time_cost": 3, "argon2_memory_kib": 65_536, "argon2_parallelism": 4}

# Each test asks for `redis` only to start on a flushed Redis database: the login
# limit counts per client address, and every test's client is 127.0.0.1.
pytestmark = [pytest.mark.task("hashing"), pytest.mark.usefixtures("redis")]


@asynccontextmanager
async def running_with_user(database: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on these settings (its real pool), with ada@example.com signed up."""
    try:
        async for client in open_client(create_app(make_settings(**settings))):
            await sign_up(client, "ada@example.com")
            yield client
    finally:
        await delete_all_users(database)


async def _login(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )


async def test_a_burst_of_logins_at_production_cost_leaves_the_loop_serving(
    database: str,
) -> None:
    async with running_with_user(
        database, **PRODUCTION_ARGON2, hash_queue_limit=32, login_rate_limit="1000/minute"
    ) as client:
        logins = [asyncio.create_task(_login(client)) for _ in range(20)]
        # Twenty hashes of ~100 ms on a few cores take a second or more; the
        # health check is answered in the middle of them, not after.
        lives = [(await client.get("/health/live")).status_code for _ in range(5)]
        still_hashing = sum(not login.done() for login in logins)
        statuses = [r.status_code for r in await asyncio.gather(*logins)]

    assert lives == [200] * 5
    assert still_hashing > 0, "every login had finished before the health checks were answered"
    assert statuses == [200] * 20, statuses


async def test_logins_beyond_hashing_capacity_get_503_with_retry_after(database: str) -> None:
    # One hash at a time and none waiting: while one login hashes, the others are refused.
    async with running_with_user(
        database,
        **PRODUCTION_ARGON2,
        hash_concurrency=1,
        hash_queue_limit=0,
        login_rate_limit="1000/minute",
    ) as client:
        responses = await asyncio.gather(*(_login(client) for _ in range(10)))
        after = await _login(client)

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 503}, statuses
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.headers["retry-after"] == "1"
        assert "try again" in refused.json()["detail"]
    # Refused, not broken: once the burst has passed, the next login is served.
    assert after.status_code == 200, after.text


async def test_logins_beyond_the_login_limit_get_429_before_any_hashing(database: str) -> None:
    async with running_with_user(
        database, **PRODUCTION_ARGON2, hash_queue_limit=32, login_rate_limit="3/minute"
    ) as client:
        statuses = sorted(
            r.status_code for r in await asyncio.gather(*(_login(client) for _ in range(8)))
        )

    assert statuses == [200] * 3 + [429] * 5, statuses


def test_by_default_hashing_runs_one_check_per_core_and_queues_none() -> None:
    settings = Settings(_env_file=None)

    assert settings.hash_concurrency == (os.cpu_count() or 1)
    assert settings.hash_queue_limit == 0
