"""`GET /metrics`: Prometheus text, with labels that stay bounded."""

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import (
    UserFactory,
    assert_problem,
    bearer,
    log_in,
    make_settings,
    open_client,
    with_lifespan_state,
)

from app.main import create_app

pytestmark = pytest.mark.task("metrics")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Read /metrics with prometheus-client's own parser: every sample, by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


async def test_requests_are_counted_by_method_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/health/live")
    assert_problem(await client.get("/api/v1/users/0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"), 401)
    assert_problem(await client.get("/no/such/page"), 404)

    samples = await scrape(client)

    requests = "http_requests_total"
    assert value(samples, requests, method="GET", route="/health/live", status="200") == 1
    user_route = "/api/v1/users/{user_id}"
    assert value(samples, requests, method="GET", route=user_route, status="401") == 1
    # Never the path itself: an id per series would grow without bound.
    routes = {dict(labels).get("route") for _name, labels in samples}
    assert not [route for route in routes if route and "0b7e3f52" in route], routes
    assert "/no/such/page" not in routes
    assert total(samples, requests, status="404") == 1


async def test_latency_is_a_histogram_with_the_same_labels(client: httpx.AsyncClient) -> None:
    await client.get("/health/live")

    samples = await scrape(client)

    labels = {"method": "GET", "route": "/health/live", "status": "200"}
    assert value(samples, "http_request_duration_seconds_count", **labels) == 1
    assert value(samples, "http_request_duration_seconds_bucket", **labels, le="+Inf") == 1


async def test_made_up_methods_share_one_label(client: httpx.AsyncClient) -> None:
    for number in range(5):
        assert (await client.request(f"MADEUP{number}", "/health/live")).status_code == 405

    samples = await scrape(client)

    methods = {dict(labels).get("method") for name, labels in samples if name.startswith("http_")}
    assert not [method for method in methods if method and "MADEUP" in method], methods


async def test_cache_hits_and_misses_are_counted(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")
    headers = bearer((await log_in(client, "ada@example.com"))["access_token"])
    before = await scrape(client)

    for _ in range(3):
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    after = await scrape(client)

    counters = ("cache_hits_total", "cache_misses_total")
    reads = sum(total(after, name) - total(before, name) for name in counters)
    assert reads == 3
    assert total(after, "cache_hits_total") - total(before, "cache_hits_total") >= 2


async def test_rate_limit_decisions_are_counted(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app = create_app(make_settings(login_rate_limit="1/minute"))
    form = {"username": "nobody@example.com", "password": "wrong password"}
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        await client.post("/api/v1/auth/token", data=form)
        assert (await client.post("/api/v1/auth/token", data=form)).status_code == 429
        samples = await scrape(client)

    decisions = "rate_limit_decisions_total"
    assert total(samples, decisions, outcome="limited") >= 1
    assert total(samples, decisions, outcome="allowed") >= 1


async def test_auth_checks_are_counted(client: httpx.AsyncClient, user: UserFactory) -> None:
    await user("ada@example.com")
    headers = bearer((await log_in(client, "ada@example.com"))["access_token"])
    before = await scrape(client)

    for _ in range(2):
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    after = await scrape(client)

    assert total(after, "auth_checks_total") - total(before, "auth_checks_total") == 2


async def test_redis_errors_are_counted(
    closed_port_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(make_settings(redis_url=closed_port_url, redis_socket_timeout_seconds=0.2))
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        assert (await client.get("/health/ready")).status_code == 200
        await client.post("/api/v1/users", json={"email": "ada@example.com", "password": "x" * 12})
        samples = await scrape(client)

    assert total(samples, "redis_errors_total") >= 2


async def test_the_pool_gauge_counts_the_connections_checked_out(app: FastAPI) -> None:
    # The app's own pool (the client fixture would route queries to the test's connection).
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=with_lifespan_state(app, dict(state)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            gauge = "db_pool_connections_in_use"
            before = value(await scrape(client), gauge)
            async with state["engine"].connect(), state["engine"].connect():
                during = value(await scrape(client), gauge)
            after = value(await scrape(client), gauge)

    assert (before, during, after) == (0, 2, 0)


async def test_each_app_counts_its_own_requests(client: httpx.AsyncClient, redis: Redis) -> None:
    assert (await client.get("/health/live")).status_code == 200
    labels = {"method": "GET", "route": "/health/live", "status": "200"}
    assert value(await scrape(client), "http_requests_total", **labels) == 1

    # Another app in the same process starts from nothing: no shared registry.
    async for other in open_client(create_app(make_settings())):
        assert value(await scrape(other), "http_requests_total", **labels) == 0
