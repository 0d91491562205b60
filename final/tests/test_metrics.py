"""The Prometheus endpoint."""

import asyncio
import re

import httpx
import pytest
from fastapi import FastAPI
from tests.conftest import assert_problem, open_client, with_lifespan_state

from app.config import Settings
from app.main import create_app


def metric(text: str, series: str) -> float:
    """The value of one series in Prometheus text (fails when the series is absent)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} is not in the metrics:\n{text}"
    return float(match.group(1))


async def test_metrics_count_requests_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/health/live")
    assert_problem(await client.get("/api/v1/users/0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"), 401)
    assert_problem(await client.get("/no/such/page"), 404)
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'http_requests_total{method="GET",route="/health/live",status="200"} 1.0' in text
    assert 'route="/api/v1/users/{user_id}",status="401"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "0b7e3f52" not in text
    assert "/no/such/page" not in text
    assert "http_request_duration_seconds_bucket" in text


async def test_metrics_label_made_up_methods_other(client: httpx.AsyncClient) -> None:
    # Under uvicorn's h11 server any token is a method: each made-up one would
    # otherwise add series for every route and status, without bound.
    for n in range(5):
        assert (await client.request(f"MADEUP{n}", "/health/live")).status_code == 405
    assert (await client.request("PATCH", "/health/live")).status_code == 405
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="OTHER",route="/health/live",status="405"} 5.0' in text
    assert 'http_requests_total{method="PATCH",route="/health/live",status="405"} 1.0' in text
    assert "MADEUP" not in text


async def test_metrics_label_documentation_routes_by_their_path(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/openapi.json",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/docs",status="200"} 1.0' in text
    assert "<unmatched>" not in text


async def test_metrics_expose_the_cache_counters_from_zero(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert metric(text, "cache_hits_total") == 0
    assert metric(text, "cache_misses_total") == 0


async def test_the_pool_gauge_counts_the_connections_checked_out(app: FastAPI) -> None:
    # The app's own pool (the client fixture would route queries to the test's connection).
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=with_lifespan_state(app, dict(state)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def in_use() -> float:
                text = (await client.get("/metrics")).text
                return metric(text, "db_pool_connections_in_use")

            before = await in_use()
            async with state["engine"].connect(), state["engine"].connect():
                during = await in_use()
            after = await in_use()

    assert (before, during, after) == (0, 2, 0)


async def test_each_app_has_its_own_metrics(client: httpx.AsyncClient, settings: Settings) -> None:
    assert (await client.get("/health/live")).status_code == 200
    counted = 'http_requests_total{method="GET",route="/health/live",status="200"}'
    assert metric((await client.get("/metrics")).text, counted) == 1

    # Another app in the same process starts from nothing: no shared registry.
    async for other in open_client(create_app(settings)):
        assert 'route="/health/live"' not in (await other.get("/metrics")).text


async def test_a_request_cancelled_before_its_answer_is_counted_as_500(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()  # never set: the route never answers

    app.add_api_route("/test/hang", hang)
    # The server cancels the request (a graceful shutdown's deadline, say)
    # before any answer: it is still counted, as the 500 of an app that died.
    request = asyncio.create_task(client.get("/test/hang"))
    await started.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    text = (await client.get("/metrics")).text
    assert metric(text, 'http_requests_total{method="GET",route="/test/hang",status="500"}') == 1
