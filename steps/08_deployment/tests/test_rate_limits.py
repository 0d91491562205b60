"""The general per-client limit: burst and rate, headers, replicas, the client behind a proxy."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import make_settings, open_client

from app.main import create_app

USERS = "/api/v1/users"
# A user read with no token: a cheap 401 that still counts against the limit
# (a refused token is counted too: guessing is not free).
UNKNOWN = f"{USERS}/{uuid.uuid4()}"

# Every test starts from a flushed Redis: no count leaks in from another test.
pytestmark = [pytest.mark.task("rate-limit"), pytest.mark.usefixtures("redis")]


@asynccontextmanager
async def running(
    sessionmaker: async_sessionmaker[AsyncSession], **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with these settings."""
    app = create_app(make_settings(**settings))
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        yield client


async def statuses(client: httpx.AsyncClient, times: int, **options: Any) -> list[int]:
    return [(await client.get(UNKNOWN, **options)).status_code for _ in range(times)]


async def test_the_request_past_the_limit_gets_429_with_retry_after_and_ratelimit_headers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="2/minute") as client:
        assert await statuses(client, 2) == [401, 401]
        refused = await client.get(UNKNOWN)

    assert refused.status_code == 429, refused.text
    assert refused.json()["detail"].startswith("Too many requests")
    # One request every 30 s: the next one is allowed in 30 s at most.
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["ratelimit-policy"] == '"api";q=2;w=60'
    assert refused.headers["ratelimit"].startswith('"api";r=0;t=')


async def test_an_allowed_response_says_what_is_left(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="3/minute") as client:
        first = await client.post(USERS, json={"email": "a@example.com", "password": "x" * 8})
        second = await client.post(USERS, json={"email": "b@example.com", "password": "x" * 8})

    assert first.status_code == 201, first.text
    assert first.headers["ratelimit-policy"] == '"api";q=3;w=60'
    assert first.headers["ratelimit"].startswith('"api";r=2;')
    assert second.headers["ratelimit"].startswith('"api";r=1;')
    assert "retry-after" not in first.headers


async def test_a_burst_then_one_request_per_interval(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="2/second") as client:
        burst = await statuses(client, 3)
        # One interval (half a second) gives back one request, not the whole burst.
        await asyncio.sleep(0.6)
        after_one_interval = await statuses(client, 2)

    assert burst == [401, 401, 429]
    assert after_one_interval == [401, 429]


async def test_refused_requests_cost_no_quota(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="1/second") as client:
        assert await statuses(client, 1) == [401]
        # Hammering a closed limit: if refusals counted, the wait below would not be enough.
        assert await statuses(client, 10) == [429] * 10
        await asyncio.sleep(1.05)
        assert await statuses(client, 2) == [401, 429]


async def test_a_limit_leaves_nothing_in_redis_once_its_quota_is_back(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    async with running(sessionmaker, rate_limit="2/second") as client:
        # No token: refused before anything is cached or marked, so every key left is the limit's.
        assert await statuses(client, 2) == [401, 401]
        assert await redis.dbsize() > 0
        # The full quota is back after one period; the count then has nothing to say.
        for _ in range(100):
            if await redis.dbsize() == 0:
                break
            await asyncio.sleep(0.05)

    assert await redis.dbsize() == 0


async def test_two_app_instances_on_one_redis_share_one_limit(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with (
        running(sessionmaker, rate_limit="3/minute") as replica_a,
        running(sessionmaker, rate_limit="3/minute") as replica_b,
    ):
        seen = [
            (await replica_a.get(UNKNOWN)).status_code,
            (await replica_b.get(UNKNOWN)).status_code,
            (await replica_a.get(UNKNOWN)).status_code,
            (await replica_b.get(UNKNOWN)).status_code,
            (await replica_a.get(UNKNOWN)).status_code,
        ]

    assert seen == [401, 401, 401, 429, 429]


async def test_health_is_not_rate_limited(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with running(sessionmaker, rate_limit="1/minute") as client:
        codes = [(await client.get("/health/live")).status_code for _ in range(3)]

    assert codes == [200, 200, 200]


# --- who the client is -----------------------------------------------------------------
# The test client connects from 127.0.0.1: where it is trusted, it plays the proxy.


async def test_clients_behind_a_trusted_proxy_are_counted_separately(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="1/minute", trusted_proxies="127.0.0.1") as client:
        first = await statuses(client, 2, headers={"X-Forwarded-For": "203.0.113.1"})
        second = await statuses(client, 2, headers={"X-Forwarded-For": "203.0.113.2"})

    assert first == second == [401, 429]


async def test_a_forwarded_for_from_an_untrusted_peer_gets_no_new_quota(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="1/minute") as client:
        seen = [
            (await client.get(UNKNOWN, headers={"X-Forwarded-For": f"198.51.100.{n}"})).status_code
            for n in range(3)
        ]

    assert seen == [401, 429, 429]


async def test_only_the_hop_the_proxy_appended_counts(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(sessionmaker, rate_limit="1/minute", trusted_proxies="127.0.0.1") as client:
        # The client wrote the left part itself: a new made-up address each time.
        seen = [
            (
                await client.get(UNKNOWN, headers={"X-Forwarded-For": f"10.9.9.{n}, 203.0.113.1"})
            ).status_code
            for n in range(2)
        ]

    assert seen == [401, 429]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # A hop with a port is the same client as without it.
        ("203.0.113.7:4711", "203.0.113.7"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        # An IPv4-mapped IPv6 address is the IPv4 client it wraps.
        ("::ffff:203.0.113.7", "203.0.113.7"),
        # IPv6 clients are counted by their /64: one host can use any address in it.
        ("2001:db8:0:1::1", "2001:db8:0:1::2"),
    ],
)
async def test_forms_of_one_client_share_a_count(
    sessionmaker: async_sessionmaker[AsyncSession], first: str, second: str
) -> None:
    async with running(sessionmaker, rate_limit="1/minute", trusted_proxies="127.0.0.1") as client:
        seen = await statuses(client, 1, headers={"X-Forwarded-For": first})
        seen += await statuses(client, 1, headers={"X-Forwarded-For": second})
        # And a client of another /64, or another address, has its own.
        seen += await statuses(client, 1, headers={"X-Forwarded-For": "2001:db8:0:2::1"})

    assert seen == [401, 429, 401]
