"""Cross-cutting behaviour: request ids, security headers, hosts, body limits, CORS, errors."""

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send
from tests.conftest import ServerClock, assert_problem, make_settings, open_client

from app.logging import RequestIdFilter
from app.main import create_app

USERS = "/api/v1/users"


async def test_unknown_path_returns_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no/such/path"), 404)


async def test_wrong_method_returns_405_problem(client: httpx.AsyncClient) -> None:
    r = await client.put("/health/live")
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET"


async def test_a_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    # Three routes share this path, one per method: the Allow header names all of them.
    r = await client.put(f"{USERS}/0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11")
    assert_problem(r, 405)
    assert r.headers["allow"] == "DELETE, GET, PATCH"


async def test_sane_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert r.headers["x-request-id"] == "abc.DEF-123_x"


@pytest.mark.parametrize("bad_id", ["a" * 129, "has space", "semi;colon", "ünïcode", ""])
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, bad_id: str) -> None:
    r = await client.get("/health/live", headers={"X-Request-ID": bad_id.encode()})
    assert r.headers["x-request-id"] != bad_id
    assert len(r.headers["x-request-id"]) == 32


async def test_error_body_carries_the_request_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/nowhere", headers={"X-Request-ID": "trace-me"})
    assert assert_problem(r, 404)["request_id"] == "trace-me"


async def test_security_headers_are_set_and_hsts_only_over_https(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/health/live")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["server-timing"].startswith("app;dur=")
    assert "strict-transport-security" not in r.headers
    secure = await client.get("https://test/health/live")
    # One year for this host only (max-age=0 would tell browsers to forget HSTS;
    # includeSubDomains would bind every sibling service to HTTPS too).
    assert secure.headers["strict-transport-security"] == "max-age=31536000"


async def test_every_response_header_name_is_lower_case(client: httpx.AsyncClient) -> None:
    # ASGI requires lower-case names (HTTP/2 allows no others), and Starlette's
    # Headers, in any layer above ours, would not find a name in another case.
    r = await client.get("/health/live")
    raw_names = [name for name, _value in r.headers.raw]
    assert {b"x-request-id", b"server-timing", b"x-content-type-options"} <= set(raw_names)
    assert [name.lower() for name in raw_names] == raw_names


async def test_a_response_started_without_a_headers_list_gets_the_headers(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def bare_asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
        """Answer as the ASGI spec allows: a response start with no "headers" key."""
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"bare"})

    app.mount("/test/bare", bare_asgi_app)
    r = await client.get("/test/bare/", headers={"X-Request-ID": "bare-1"})
    assert r.status_code == 200, r.text
    assert r.text == "bare"
    assert r.headers["x-request-id"] == "bare-1"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["server-timing"].startswith("app;dur=")


async def test_server_timing_is_the_apps_time_to_first_byte_in_milliseconds(app: FastAPI) -> None:
    async def sleep(seconds: float) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    app.add_api_route("/test/sleep", sleep)
    server = ServerClock(app)
    # The route reads no state: no lifespan is needed.
    transport = httpx.ASGITransport(app=server)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        # A first request pays the one-off costs (building the middleware stack)
        # that would otherwise fall between the next one's arrival and its timing.
        for seconds in (0, 0.5):
            r = await client.get("/test/sleep", params={"seconds": seconds})
            assert r.status_code == 200, r.text
    duration = float(r.headers["server-timing"].removeprefix("app;dur="))
    # Bounds, not a speed test: the route slept, and the app's time lies within
    # the server's, from the request's arrival to the answer's start (plus the
    # header's rounding to 0.1 ms).
    assert 500 <= duration <= (server.answered - server.arrived) * 1000 + 0.05


async def test_the_lifespan_passes_through_every_middleware() -> None:
    # The client fixtures start the lifespan beside the middleware stack; a server
    # such as uvicorn sends it through the stack, as this test does. With CORS on,
    # every layer of the stack is there.
    app = create_app(make_settings(cors_origins="https://app.example.com"))
    incoming: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_untrusted_host_returns_400_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live", headers={"Host": "evil.example.com"})
    assert_problem(r, 400)


async def test_body_over_the_limit_by_content_length_returns_413(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        USERS, content=b"x" * (1024 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert_problem(r, 413)
    # The unread rest of the body is still on the wire: the connection must not be reused.
    assert r.headers["connection"] == "close"


async def test_streamed_body_over_the_limit_returns_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # 20 x 64 KiB, no Content-Length: chunked

    r = await client.post(USERS, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413)


async def test_streamed_body_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "stream@example.com",'
        yield b' "password": "long enough"}'

    r = await client.post(USERS, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.fixture
def app_that_fails() -> FastAPI:
    app = create_app(make_settings())

    async def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/explode", explode)
    return app


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_unexpected_error_returns_500_problem_and_logs_the_traceback_with_request_id(
    app_that_fails: FastAPI,
) -> None:
    recorder = _Recorder()
    logging.getLogger("app.errors").addHandler(recorder)
    try:
        async for client in open_client(app_that_fails):
            r = await client.get("/explode", headers={"X-Request-ID": "boom-1"})
    finally:
        logging.getLogger("app.errors").removeHandler(recorder)
    body = assert_problem(r, 500)
    assert body["request_id"] == "boom-1"
    assert "hunter2" not in r.text
    assert "RuntimeError" not in r.text
    [record] = recorder.records
    # The line an operator's alert on unexpected errors looks for.
    assert record.getMessage() == "Unhandled error while serving a request."
    assert record.exc_info is not None
    assert record.request_id == "boom-1"  # type: ignore[attr-defined]


@pytest.fixture
async def cors_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(cors_origins="https://app.example.com"))
    async for client in open_client(app):
        yield client


async def test_cors_preflight_from_allowed_origin_succeeds(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await cors_client.options(
        USERS,
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert r.headers["access-control-allow-credentials"] == "true"


async def test_cors_for_any_origin_never_allows_credentials() -> None:
    # The CORS middleware answers a preflight itself: no lifespan is needed.
    app = create_app(make_settings(cors_origins="*"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.options(
            USERS,
            headers={"Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"},
        )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    # With credentials any site could read a logged-in user's answers.
    assert "access-control-allow-credentials" not in r.headers


async def test_simple_cross_origin_request_exposes_the_request_id_and_retry_after(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await cors_client.get("/health/live", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 200, r.text
    exposed = r.headers["access-control-expose-headers"].lower().split(",")
    assert {name.strip() for name in exposed} == {"x-request-id", "retry-after"}


async def test_cors_preflight_from_unknown_origin_returns_400_problem(
    cors_client: httpx.AsyncClient,
) -> None:
    r = await cors_client.options(
        USERS,
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    body = assert_problem(r, 400)
    assert "origin" in body["detail"]
