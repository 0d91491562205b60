"""CORS: the origins, methods and headers a browser may use, and refusals as problem+json."""

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.conftest import assert_problem, make_settings, open_client

from app.main import create_app

ORIGIN = "https://app.example.com"
# What the API's browser clients send: a token, a JSON body, their own request id.
API_HEADERS = "authorization, content-type, x-request-id"


@pytest.fixture
async def cors_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(cors_origins=ORIGIN))
    async for client in open_client(app):
        yield client


async def preflight(
    client: httpx.AsyncClient, method: str, headers: str = API_HEADERS
) -> httpx.Response:
    """Ask, as a browser does before a cross-origin request, whether it is allowed."""
    return await client.options(
        "/api/v1/users",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def names(value: str) -> set[str]:
    """A comma-separated header value as a set of lower-case names."""
    return {item.strip().lower() for item in value.split(",")}


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
async def test_preflight_allows_each_method_of_the_api(
    cors_client: httpx.AsyncClient, method: str
) -> None:
    r = await preflight(cors_client, method)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    # Browsers compare methods case-sensitively: these must be upper case.
    allowed = {item.strip() for item in r.headers["access-control-allow-methods"].split(",")}
    assert allowed == {"GET", "POST", "PATCH", "DELETE"}


async def test_preflight_allows_exactly_the_headers_the_api_reads(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await preflight(cors_client, "POST")
    assert r.status_code == 200, r.text
    # The three the API reads, and the CORS-safelisted ones Starlette always allows.
    assert names(r.headers["access-control-allow-headers"]) == {
        "authorization",
        "content-type",
        "x-request-id",
        "accept",
        "accept-language",
        "content-language",
    }


async def test_preflight_for_a_method_the_api_does_not_offer_gets_400_problem_naming_it(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await preflight(cors_client, "PUT")
    body = assert_problem(r, 400)
    assert body["detail"] == "This cross-origin request is not allowed (refused: method)."
    # The CORS headers stay: the browser's console shows what is allowed, and
    # that it was the method, not the origin, that was refused.
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert names(r.headers["access-control-allow-methods"]) == {"get", "post", "patch", "delete"}


async def test_preflight_for_a_header_the_api_does_not_read_gets_400_problem_naming_it(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await preflight(cors_client, "GET", headers="authorization, x-api-key")
    body = assert_problem(r, 400)
    assert body["detail"] == "This cross-origin request is not allowed (refused: headers)."


async def test_options_without_a_requested_method_is_an_ordinary_request(
    cors_client: httpx.AsyncClient,
) -> None:
    # Without Access-Control-Request-Method it is no preflight: the app answers
    # it (no route serves OPTIONS), with the CORS headers of a simple request.
    r = await cors_client.options("/health/live", headers={"Origin": ORIGIN})
    assert_problem(r, 405)
    assert r.headers["access-control-allow-origin"] == ORIGIN


async def test_cross_origin_request_body_reaches_the_route(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await cors_client.post(
        "/api/v1/users",
        json={"email": "not an email", "password": "long enough"},
        headers={"Origin": ORIGIN},
    )
    # A 422 naming the field: the route read and validated the body the page sent.
    body = assert_problem(r, 422)
    assert [error["loc"] for error in body["errors"]] == [["body", "email"]]
    assert r.headers["access-control-allow-origin"] == ORIGIN
