"""The request guard: which Host headers are served, how large a body may be, late errors."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from tests.conftest import assert_problem, make_settings, open_client

from app.main import create_app

# A small body limit, so that a test can send a body exactly at it, and one byte over.
LIMIT = 64
UPLOAD = "/test/upload"


async def get_with_host(trusted_hosts: list[str], host: str) -> httpx.Response:
    """GET /health/live with this Host header from an app that trusts trusted_hosts."""
    app = create_app(make_settings(trusted_hosts=trusted_hosts))
    async for client in open_client(app):
        response = await client.get("/health/live", headers={"Host": host})
    return response


@pytest.mark.parametrize(
    ("trusted_hosts", "host"),
    [
        (["test"], "test:8000"),
        (["test"], "TEST"),
        # An IPv6 literal's colons are not a port: only what follows "]" is.
        (["[::1]"], "[::1]"),
        (["[::1]"], "[::1]:8000"),
        (["*"], "anything.example"),
        (["*.example.com"], "api.example.com"),
        (["*.example.com"], "a.b.example.com:443"),
        (["*.example.com"], "API.Example.COM"),
    ],
)
async def test_a_trusted_host_is_served(trusted_hosts: list[str], host: str) -> None:
    r = await get_with_host(trusted_hosts, host)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("trusted_hosts", "host"),
    [
        (["test"], "test.evil.example"),
        (["[::1]"], "[::2]:8000"),
        # "*.example.com" names the subdomains only: not the domain itself, and
        # not a look-alike domain that merely ends with the same letters.
        (["*.example.com"], "example.com"),
        (["*.example.com"], "notexample.com"),
        (["*.example.com"], "evil.com"),
    ],
)
async def test_an_untrusted_host_gets_400_problem_saying_why(
    trusted_hosts: list[str], host: str
) -> None:
    r = await get_with_host(trusted_hosts, host)
    body = assert_problem(r, 400)
    assert body["detail"] == "The Host header names a host this service does not serve."


async def test_a_request_without_a_host_header_gets_400_problem(
    client: httpx.AsyncClient,
) -> None:
    # An HTTP/1.0 client may send no Host at all: that names no host we serve.
    request = client.build_request("GET", "/health/live")
    del request.headers["host"]
    body = assert_problem(await client.send(request), 400)
    assert body["detail"] == "The Host header names a host this service does not serve."


@pytest.fixture
async def small_limit_client() -> AsyncIterator[tuple[httpx.AsyncClient, list[int]]]:
    """A client of an app that takes bodies up to LIMIT bytes, and the sizes its route has read."""
    app = create_app(make_settings(max_body_bytes=LIMIT))
    sizes: list[int] = []

    async def upload(request: Request) -> dict[str, int]:
        sizes.append(len(await request.body()))
        return {"bytes": sizes[-1]}

    app.add_api_route(UPLOAD, upload, methods=["POST"])
    async for client in open_client(app):
        yield client, sizes


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """Stream body in chunks of up to 10 bytes, with no Content-Length (chunked)."""
    for start in range(0, len(body), 10):
        yield body[start : start + 10]


async def test_a_body_of_exactly_the_limit_is_accepted(
    small_limit_client: tuple[httpx.AsyncClient, list[int]],
) -> None:
    client, sizes = small_limit_client
    r = await client.post(UPLOAD, content=b"x" * LIMIT)
    assert r.status_code == 200, r.text
    assert sizes == [LIMIT]


async def test_a_streamed_body_of_exactly_the_limit_is_accepted(
    small_limit_client: tuple[httpx.AsyncClient, list[int]],
) -> None:
    client, sizes = small_limit_client
    r = await client.post(UPLOAD, content=chunked(b"x" * LIMIT))
    assert "content-length" not in r.request.headers
    assert r.status_code == 200, r.text
    assert sizes == [LIMIT]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_a_body_one_byte_over_the_limit_gets_413_naming_the_limit(
    small_limit_client: tuple[httpx.AsyncClient, list[int]], streamed: bool
) -> None:
    client, sizes = small_limit_client
    body = b"x" * (LIMIT + 1)
    r = await client.post(UPLOAD, content=chunked(body) if streamed else body)
    problem = assert_problem(r, 413)
    # The limit is the MAX_BODY_BYTES setting, and the client is told what it is.
    assert problem["detail"] == f"The request body is larger than the limit of {LIMIT} bytes."
    assert r.headers["connection"] == "close"
    assert sizes == []


@pytest.fixture
def app_whose_stream_breaks() -> FastAPI:
    app = create_app(make_settings())

    async def read_chunk() -> bytes:
        raise RuntimeError("the stream broke")

    async def chunks() -> AsyncIterator[bytes]:
        yield await read_chunk()  # fails: nothing follows the 200's status line

    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    app.add_api_route("/test/stream", stream)
    return app


async def test_an_error_after_the_response_started_reaches_the_server(
    app_whose_stream_breaks: FastAPI,
) -> None:
    # The status line of a 200 is out: a 500 can no longer be sent. The error
    # must reach the server, which closes the connection, so that the client
    # sees a cut-off response rather than a second one after the first.
    async for client in open_client(app_whose_stream_breaks):
        with pytest.raises(RuntimeError, match="the stream broke"):
            await client.get("/test/stream")
