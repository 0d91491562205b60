"""Middleware: request id, timing and security headers, CORS, trusted hosts, body limit."""

import asyncio
import re
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Receive, Scope, Send

from app.config import DEFAULT_MAX_BODY_BYTES, Settings
from app.main import create_app

pytestmark = pytest.mark.task("middleware")

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def upload_calls(app: FastAPI) -> list[int]:
    """Add a route that reads the whole body; return the sizes it has read."""
    calls: list[int] = []

    @app.post("/test/upload")
    async def upload(request: Request) -> dict[str, int]:
        """Read the body and report its size."""
        body = await request.body()
        calls.append(len(body))
        return {"bytes": len(body)}

    return calls


@pytest.fixture
def json_calls(app: FastAPI) -> list[dict[str, str]]:
    """Add a route with a JSON body parsed by FastAPI; return the payloads it got."""
    calls: list[dict[str, str]] = []

    @app.post("/test/json")
    async def json_body(payload: dict[str, str]) -> dict[str, int]:
        """Count the payload's keys."""
        calls.append(payload)
        return {"keys": len(payload)}

    return calls


async def oversized_chunks() -> AsyncIterator[bytes]:
    """Yield a 2 MiB body in 64 KiB chunks, without a Content-Length."""
    for _ in range(32):
        yield b"x" * (64 * 1024)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """Check a problem+json answer and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    assert problem["status"] == status
    assert set(problem) == {"type", "title", "status", "detail", "instance", "request_id"}
    assert problem["request_id"] == response.headers["x-request-id"]
    # The length is declared, and right: a client reads exactly the body, no more.
    assert response.headers["content-length"] == str(len(response.content))
    return problem


async def test_sane_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    request_id = "client-id_1.2-" + "x" * 114  # exactly 128 characters

    response = await client.get("/health/live", headers={"X-Request-ID": request_id})

    assert response.headers["x-request-id"] == request_id


async def test_missing_request_id_is_generated(client: httpx.AsyncClient) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")

    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 129,
        "",
        "with space",
        "line\tbreak",
        "id\x01control",
        "forged%0d%0alog-line",
        "forged\r\nlog-line",
        "nul\x00byte",
        "<script>alert(1)</script>",
        "semi;colon",
        "naïve",
    ],
)
async def test_hostile_request_id_is_replaced_by_a_generated_one(
    client: httpx.AsyncClient, hostile: str
) -> None:
    # Sent as raw bytes: httpx would refuse to encode some of these itself.
    response = await client.get(
        "/health/live", headers={b"X-Request-ID": hostile.encode("latin-1")}
    )

    assert response.status_code == 200, response.text
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_response_carries_server_timing(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert re.fullmatch(r"app;dur=\d+\.\d", response.headers["server-timing"])


async def test_server_timing_is_the_time_the_app_took_in_milliseconds(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.get("/test/slow")
    async def slow() -> dict[str, bool]:
        """Take at least 50 ms before answering."""
        await asyncio.sleep(0.05)
        return {"slow": True}

    started = time.perf_counter()
    response = await client.get("/test/slow")
    client_ms = (time.perf_counter() - started) * 1000

    duration = float(response.headers["server-timing"].removeprefix("app;dur="))
    # Bounds, not a speed test: the route slept 50 ms, and the app's time is
    # part of the time the client waited (plus the header's rounding).
    assert 50 <= duration <= client_ms + 0.05


async def test_a_response_started_without_a_headers_list_gets_the_headers(
    settings: Settings,
) -> None:
    async def bare_asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
        """Answer as the ASGI spec allows: a response start with no "headers" key."""
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"bare"})

    # Without CORS, whose own wrapper would add the list before ours see the message.
    app = create_app(settings.model_copy(update={"cors_origins": []}))
    app.mount("/test/bare", bare_asgi_app)
    # The bare app reads no state: no lifespan is needed.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/test/bare/", headers={"X-Request-ID": "bare-1"})

    assert response.status_code == 200, response.text
    assert response.text == "bare"
    assert response.headers["x-request-id"] == "bare-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["server-timing"].startswith("app;dur=")


async def test_response_carries_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


async def test_no_hsts_over_plain_http(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert "strict-transport-security" not in response.headers


async def test_hsts_over_https(client: httpx.AsyncClient) -> None:
    response = await client.get("https://test/health/live")

    assert response.headers["strict-transport-security"] == "max-age=31536000"


async def test_not_found_carries_the_request_id_and_security_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/no/such/route")

    assert response.status_code == 404, response.text
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_cors_preflight_from_an_allowed_origin_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    allowed_origin = settings.cors_origins[0]

    response = await client.options(
        "/health/live",
        headers={
            "Origin": allowed_origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == allowed_origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["x-request-id"]


async def test_cors_preflight_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/health/live",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )

    assert response.status_code == 400, response.text
    assert "access-control-allow-origin" not in response.headers


async def test_cors_for_any_origin_never_allows_credentials(settings: Settings) -> None:
    any_origin = create_app(settings.model_copy(update={"cors_origins": ["*"]}))
    # The CORS middleware answers a preflight itself: no lifespan is needed.
    transport = httpx.ASGITransport(app=any_origin)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.options(
            "/health/live",
            headers={"Origin": "https://anywhere.example", "Access-Control-Request-Method": "GET"},
        )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    # With credentials any site could read a logged-in user's answers.
    assert "access-control-allow-credentials" not in response.headers


async def test_simple_cross_origin_request_exposes_the_request_id(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    allowed_origin = settings.cors_origins[0]

    response = await client.get("/health/live", headers={"Origin": allowed_origin})

    assert response.headers["access-control-allow-origin"] == allowed_origin
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def preflight(client: httpx.AsyncClient, origin: str, method: str) -> httpx.Response:
    """Ask, as a browser does before a cross-origin request, whether `method` is allowed."""
    return await client.options(
        "/health/live",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
        },
    )


def header_list(value: str) -> set[str]:
    """Read a comma-separated header value as a set of lower-case names."""
    return {item.strip().lower() for item in value.split(",")}


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
async def test_cors_preflight_allows_the_api_methods_and_headers(
    client: httpx.AsyncClient, settings: Settings, method: str
) -> None:
    response = await preflight(client, settings.cors_origins[0], method)

    assert response.status_code == 200, response.text
    allowed = response.headers["access-control-allow-methods"]
    assert {item.strip() for item in allowed.split(",")} == {"GET", "POST", "PATCH", "DELETE"}
    assert {"authorization", "content-type", "x-request-id"} <= header_list(
        response.headers["access-control-allow-headers"]
    )


@pytest.mark.parametrize("method", ["PUT", "TRACE"])
async def test_cors_preflight_refuses_methods_the_api_does_not_offer(
    client: httpx.AsyncClient, settings: Settings, method: str
) -> None:
    response = await preflight(client, settings.cors_origins[0], method)

    assert response.status_code == 400, response.text


async def test_simple_cross_origin_request_exposes_retry_after(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # A browser script must be able to read how long to wait after a 429 or 503.
    response = await client.get("/health/live", headers={"Origin": settings.cors_origins[0]})

    exposed = header_list(response.headers["access-control-expose-headers"])
    assert {"x-request-id", "retry-after"} <= exposed


async def test_wrong_host_is_refused_with_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Host": "attacker.example"})

    assert response.status_code == 400, response.text
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_body_at_the_limit_is_accepted(
    client: httpx.AsyncClient, upload_calls: list[int]
) -> None:
    response = await client.post("/test/upload", content=b"x" * DEFAULT_MAX_BODY_BYTES)

    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": DEFAULT_MAX_BODY_BYTES}


async def test_oversized_body_with_content_length_gets_413_before_the_route_runs(
    client: httpx.AsyncClient, upload_calls: list[int]
) -> None:
    response = await client.post(
        "/test/upload",
        content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1),
        headers={"X-Request-ID": "big-upload"},
    )

    problem = assert_problem(response, 413)
    assert problem["instance"] == "/test/upload"
    assert problem["request_id"] == "big-upload"
    assert upload_calls == []
    # The unread rest of the body is still on the wire: the connection must not be reused.
    assert response.headers["connection"] == "close"


async def test_oversized_body_with_content_length_is_refused_before_the_route_starts(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    started: list[str] = []

    @app.post("/test/started")
    async def record_start(request: Request) -> dict[str, int]:
        """Note that the route ran, then read the body."""
        started.append(request.url.path)
        return {"bytes": len(await request.body())}

    response = await client.post("/test/started", content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1))

    assert_problem(response, 413)
    # The declared length alone decides: the route never runs, not even to be cut off.
    assert started == []


async def test_oversized_chunked_body_gets_413_without_reading_it_all(
    client: httpx.AsyncClient, upload_calls: list[int]
) -> None:
    chunk = b"x" * (256 * 1024)
    total_chunks = 16  # 4 MiB on offer, 1 MiB allowed
    chunks_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(total_chunks):
            chunks_sent += 1
            yield chunk

    response = await client.post("/test/upload", content=body())

    assert "content-length" not in response.request.headers
    problem = assert_problem(response, 413)
    assert problem["instance"] == "/test/upload"
    # The 413 went out as soon as the limit was crossed: one chunk past it.
    assert chunks_sent == DEFAULT_MAX_BODY_BYTES // len(chunk) + 1
    assert upload_calls == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversized_body_from_an_allowed_origin_gets_a_413_with_cors_headers(
    client: httpx.AsyncClient, settings: Settings, upload_calls: list[int], chunked: bool
) -> None:
    allowed_origin = settings.cors_origins[0]
    body = oversized_chunks() if chunked else b"x" * (DEFAULT_MAX_BODY_BYTES + 1)

    response = await client.post("/test/upload", content=body, headers={"Origin": allowed_origin})

    assert_problem(response, 413)
    # Without it, the browser hands the page's script a network error instead of the 413.
    assert response.headers["access-control-allow-origin"] == allowed_origin
    assert upload_calls == []


async def test_oversized_chunked_body_for_a_parsed_json_route_gets_413_not_400(
    client: httpx.AsyncClient, json_calls: list[dict[str, str]]
) -> None:
    response = await client.post(
        "/test/json", content=oversized_chunks(), headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 413)
    assert json_calls == []


async def test_the_lifespan_passes_through_every_middleware(app: FastAPI) -> None:
    # The client fixture starts the lifespan beside the middleware stack; a server
    # such as uvicorn sends it through the stack, as this test does.
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
