"""The Prometheus endpoint."""

import httpx
from tests.conftest import assert_problem


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


async def test_metrics_expose_pool_usage_and_cache_counters(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert "db_pool_connections_in_use " in text
    assert "cache_hits_total 0.0" in text
    assert "cache_misses_total 0.0" in text


async def test_each_app_has_its_own_metrics(client: httpx.AsyncClient) -> None:
    # A fresh app per test: counts from earlier tests never leak in.
    text = (await client.get("/metrics")).text
    assert 'route="/health/live"' not in text
