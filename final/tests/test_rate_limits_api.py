"""Rate limits on the API: 429s with their headers, shared across replicas, and without Redis."""

import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from tests.conftest import TokenFactory, assert_problem, bearer, make_settings, open_client
from tests.redis_fixtures import wait_for_redis_clock

from app.config import Settings
from app.limit_policy import client_address
from app.main import create_app
from app.repository import UserRecord

# Every test starts from a flushed Redis: no count leaks in from another test.
pytestmark = pytest.mark.usefixtures("redis")

ME = "/api/v1/users/me"  # without a token: a cheap 401 that still counts against the limit


@asynccontextmanager
async def running(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], **state: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with these settings."""
    async for client in open_client(create_app(settings), {"sessionmaker": sessionmaker, **state}):
        yield client


async def statuses(client: httpx.AsyncClient, times: int, **options: Any) -> list[int]:
    return [(await client.get(ME, **options)).status_code for _ in range(times)]


async def test_the_request_after_the_limit_gets_429_with_retry_after_and_ratelimit_headers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(rate_limit="3/minute"), sessionmaker) as client:
        started = time.monotonic()
        assert await statuses(client, 3) == [401] * 3
        r = await client.get(ME)
        took = time.monotonic() - started

    body = assert_problem(r, 429)
    # One request's worth of the minute (60 s / 3), less what the four requests took.
    retry_after = int(r.headers["retry-after"])
    assert 20 - math.ceil(took) <= retry_after <= 20
    assert f"try again in {retry_after} seconds" in body["detail"]
    assert r.headers["ratelimit-policy"] == '"api";q=3;w=60'
    assert_ratelimit(r, remaining=0, full_after=60, took=took)


async def test_a_refusal_for_one_second_says_second_not_seconds(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(rate_limit="1/second"), sessionmaker) as client:
        # The first request is allowed; the next within the second is refused.
        responses = [await client.get(ME) for _ in range(10)]
    refused = next(r for r in responses if r.status_code == 429)

    body = assert_problem(refused, 429)
    assert refused.headers["retry-after"] == "1"
    assert body["detail"] == "Too many requests: try again in 1 second."


async def test_an_allowed_response_carries_the_ratelimit_headers(
    sessionmaker: async_sessionmaker[AsyncSession], token_pair: TokenFactory
) -> None:
    app = create_app(make_settings(rate_limit="10/minute"))
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        started = time.monotonic()
        created = await client.post(
            "/api/v1/users", json={"email": "ada@example.com", "password": "long enough"}
        )
        assert created.status_code == 201, created.text
        assert_ratelimit(created, remaining=9, full_after=6, took=0)
        headers = bearer((await token_pair(_record(created.json()))).access_token)

        # Cached reads return their bytes as a Response (GET /users/me the bytes
        # the token check read): the headers must survive that too.
        for remaining, path in ((8, created.json()["id"]), (7, "me"), (6, "me")):
            r = await client.get(f"/api/v1/users/{path}", headers=headers)
            assert r.status_code == 200, r.text
            took = time.monotonic() - started
            assert_ratelimit(r, remaining=remaining, full_after=6 * (10 - remaining), took=took)
            assert r.headers["ratelimit-policy"] == '"api";q=10;w=60'


def assert_ratelimit(r: httpx.Response, *, remaining: int, full_after: int, took: float) -> None:
    """Assert the RateLimit header: what remains, and the seconds until the bucket is full again.

    Each request adds 60 s / limit to the bucket; the seconds the requests since
    the first one took have drained it by as much (the server's clock decides).
    """
    name, left, reset = r.headers["ratelimit"].split(";")
    assert (name, left) == ('"api"', f"r={remaining}"), r.headers["ratelimit"]
    assert reset.startswith("t="), r.headers["ratelimit"]
    assert full_after - math.ceil(took) <= int(reset.removeprefix("t=")) <= full_after


def _record(body: dict[str, Any]) -> UserRecord:
    now = datetime.now(UTC)
    return UserRecord(uuid.UUID(body["id"]), body["email"], None, "x", True, False, now, now)


async def test_sign_up_is_rate_limited(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with running(make_settings(rate_limit="2/minute"), sessionmaker) as client:
        answers = [
            await client.post("/api/v1/users", json={"email": f"u{n}@example.com"})
            for n in range(3)
        ]

    assert [r.status_code for r in answers] == [422, 422, 429]


async def test_two_app_instances_on_one_redis_share_the_count(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(rate_limit="4/minute")
    async with (
        running(settings, sessionmaker) as replica_a,
        running(settings, sessionmaker) as replica_b,
    ):
        seen = [
            (await replica.get(ME)).status_code
            for replica in (replica_a, replica_b, replica_a, replica_b, replica_a, replica_b)
        ]

    assert seen == [401, 401, 401, 401, 429, 429]


async def test_the_window_slides_and_the_quota_comes_back(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    # One a second: the second request is refused unless a whole second passes
    # between the two, which no machine takes for a refused token.
    async with running(make_settings(rate_limit="1/second"), sessionmaker) as client:
        assert await statuses(client, 2) == [401, 429]
        await wait_for_redis_clock(redis, 1)
        assert await statuses(client, 2) == [401, 429]


async def test_clients_are_counted_separately_behind_a_trusted_proxy(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The test client connects from 127.0.0.1: here, the proxy.
    settings = make_settings(rate_limit="1/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        first = await statuses(client, 2, headers={"X-Forwarded-For": "203.0.113.1"})
        second = await statuses(client, 2, headers={"X-Forwarded-For": "203.0.113.2"})

    assert first == second == [401, 429]


async def test_ipv6_clients_are_counted_by_their_64_bit_prefix(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(rate_limit="1/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        first = await statuses(client, 1, headers={"X-Forwarded-For": "2001:db8:0:1::1"})
        # Another address of the same /64: the same host, as far as anyone can tell.
        same_prefix = await statuses(client, 1, headers={"X-Forwarded-For": "2001:db8:0:1::2"})
        other_prefix = await statuses(client, 1, headers={"X-Forwarded-For": "2001:db8:0:2::1"})

    assert (first, same_prefix, other_prefix) == ([401], [429], [401])


async def test_a_forged_forwarded_for_from_an_untrusted_peer_gets_no_new_quota(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(rate_limit="1/minute"), sessionmaker) as client:
        seen = [
            (await client.get(ME, headers={"X-Forwarded-For": f"198.51.100.{n}"})).status_code
            for n in range(3)
        ]

    assert seen == [401, 429, 429]


async def test_the_general_limit_fails_open_when_redis_is_unreachable(
    sessionmaker: async_sessionmaker[AsyncSession], closed_port_url: str
) -> None:
    settings = make_settings(
        rate_limit="1/minute", redis_url=closed_port_url, redis_socket_timeout_seconds=0.3
    )
    async with running(settings, sessionmaker) as client:
        responses = [await client.get(ME) for _ in range(3)]
        metrics = (await client.get("/metrics")).text

    assert [r.status_code for r in responses] == [401] * 3
    # Nothing was counted, so no RateLimit header pretends otherwise.
    assert "ratelimit" not in responses[0].headers
    assert 'rate_limit_decisions_total{outcome="degraded",route_class="api"} 3.0' in metrics
    assert 'redis_errors_total{component="ratelimit"} 3.0' in metrics


async def test_without_redis_a_refused_login_still_gets_429_with_the_login_policy(
    sessionmaker: async_sessionmaker[AsyncSession], closed_port_url: str
) -> None:
    settings = make_settings(
        login_rate_limit="2/minute", redis_url=closed_port_url, redis_socket_timeout_seconds=0.3
    )
    login = {"username": "ada@example.com", "password": "not the password"}
    async with running(settings, sessionmaker) as client:
        started = time.monotonic()
        responses = [await client.post("/api/v1/auth/token", data=login) for _ in range(3)]
        took = time.monotonic() - started
        metrics = (await client.get("/metrics")).text

    assert [r.status_code for r in responses] == [401, 401, 429]
    refused = responses[-1]
    assert_problem(refused, 429)
    # Counted by the process, on its own clock: one login's worth of the minute
    # (60 s / 2), less what the three logins took; the bucket is full a minute after the first.
    retry_after = int(refused.headers["retry-after"])
    assert 30 - math.ceil(took) <= retry_after <= 30
    assert refused.headers["ratelimit-policy"] == '"login";q=2;w=60'
    name, left, reset = refused.headers["ratelimit"].split(";")
    assert (name, left) == ('"login"', "r=0"), refused.headers["ratelimit"]
    assert 60 - math.ceil(took) <= int(reset.removeprefix("t=")) <= 60
    # Two checks per login (client, then account; the refusal stops at the first):
    # the allowed ones are counted as degraded, and every check as a Redis error,
    # the general limit's three failed-open checks included.
    assert 'rate_limit_decisions_total{outcome="degraded",route_class="login"} 4.0' in metrics
    assert 'rate_limit_decisions_total{outcome="limited",route_class="login"} 1.0' in metrics
    assert 'redis_errors_total{component="ratelimit"} 8.0' in metrics


async def test_decisions_are_counted_by_route_class_and_outcome(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(rate_limit="2/minute"), sessionmaker) as client:
        await statuses(client, 3)
        metrics = (await client.get("/metrics")).text

    assert 'rate_limit_decisions_total{outcome="allowed",route_class="api"} 2.0' in metrics
    assert 'rate_limit_decisions_total{outcome="limited",route_class="api"} 1.0' in metrics


async def test_health_and_metrics_are_not_rate_limited(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(rate_limit="1/minute"), sessionmaker) as client:
        codes = [(await client.get(path)).status_code for path in ["/health/live"] * 3]

    assert codes == [200] * 3


# --- the client address ----------------------------------------------------------------


def request_from(peer: str, *forwarded_for: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded_for]
    return Request({"type": "http", "client": (peer, 4321), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # No trusted proxy involved: the socket's peer, whatever the header says.
        ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),
        # The proxy appended the client; anything further left is the client's own claim.
        ("10.0.0.2", ["1.2.3.4, 203.0.113.1"], "203.0.113.1"),
        # Two proxies of ours in a row: skip both.
        ("10.0.0.2", ["203.0.113.1, 10.0.0.3"], "203.0.113.1"),
        # Several headers count as one list.
        ("10.0.0.2", ["1.2.3.4", "203.0.113.1"], "203.0.113.1"),
        # A trusted proxy that sent no header: the proxy is all we know.
        ("10.0.0.2", [], "10.0.0.2"),
        # Garbage in the header: stop at the last address a trusted proxy vouched for.
        ("10.0.0.2", ["not-an-ip"], "10.0.0.2"),
        ("10.0.0.2", ["2001:db8::1"], "2001:db8::1"),
        # A dual-stack socket shows an IPv4 peer as IPv4-mapped IPv6: the same proxy.
        ("::ffff:10.0.0.2", ["203.0.113.1"], "203.0.113.1"),
        ("::ffff:198.51.100.7", [], "198.51.100.7"),
        ("10.0.0.2", ["203.0.113.1, ::ffff:10.0.0.3"], "203.0.113.1"),
        # Hops with a port, as some proxies write them.
        ("10.0.0.2", ["203.0.113.7:4711"], "203.0.113.7"),
        ("10.0.0.2", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.0.0.2", ["203.0.113.1, 10.0.0.3:80"], "203.0.113.1"),
        # A peer that is no address (Starlette's TestClient calls itself "testclient").
        ("testclient", ["203.0.113.1"], "testclient"),
    ],
)
def test_client_address_trusts_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded_for: list[str], expected: str
) -> None:
    proxies = make_settings(trusted_proxies="10.0.0.0/24").trusted_proxies

    assert client_address(request_from(peer, *forwarded_for), proxies) == expected


def test_a_request_without_a_peer_is_counted_as_one_client_with_no_address() -> None:
    # An ASGI server on a Unix socket gives no client: not a reason for a 500.
    request = Request({"type": "http", "client": None, "headers": []})
    proxies = make_settings(trusted_proxies="10.0.0.0/24").trusted_proxies

    assert client_address(request, proxies) == ""
