"""Hostile bytes at the HTTP layer: a 4xx, never a 5xx, and the service keeps serving."""

import json

import pytest
from harness.api import PASSWORD, PROBLEM_JSON, new_email
from harness.launcher import Launcher
from harness.rawhttp import RawResponse, exchange, request_head
from harness.service import Service

TIMEOUT_SECONDS = 30.0
MIB = 1024 * 1024
CHUNK = 64 * 1024
USERS = "/api/v1/users"


def _json_body() -> bytes:
    return json.dumps({"email": new_email("raw"), "password": PASSWORD}).encode()


async def _still_serving(service: Service) -> None:
    async with service.client() as client:
        response = await client.get("/health/live")
    assert response.status_code == 200, response.text


def _assert_problem_4xx(response: RawResponse | None, status: int) -> None:
    assert response is not None, "The connection closed without an answer."
    assert response.status == status, response.describe()
    assert response.headers.get("content-type", "").startswith(PROBLEM_JSON), response.describe()
    assert json.loads(response.body)["status"] == status, response.describe()


async def _post(service: Service, content_type: str, body: bytes) -> RawResponse | None:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    head = request_head("POST", USERS, service.port, headers)
    return await exchange(service.port, head, [body], bound_seconds=TIMEOUT_SECONDS)


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        pytest.param(
            "application/json", b'{"email": "a@example.com", "pass', 422, id="truncated-json"
        ),
        pytest.param("application/json", b"{'email': 1}", 422, id="not-json"),
        # Not JSON at all at the byte level: FastAPI cannot decode it, a 400 (not a 422).
        pytest.param(
            "application/json",
            b'{"email": "\xff\xfe@example.com", "password": "\xc3\x28abcdefgh"}',
            400,
            id="invalid-utf8",
        ),
        pytest.param(
            "application/json", b"email=a%40example.com&password=12345678", 422, id="form-as-json"
        ),
        pytest.param("application/x-www-form-urlencoded", _json_body(), 422, id="json-as-form"),
        pytest.param("text/plain", _json_body(), 422, id="json-as-text"),
    ],
)
async def test_malformed_or_mislabelled_body_gets_4xx_problem(
    launch: Launcher, content_type: str, body: bytes, status: int
) -> None:
    service = await launch.service()
    _assert_problem_4xx(await _post(service, content_type, body), status)
    await _still_serving(service)


# Text PostgreSQL cannot store, reaching the live service over a real socket:
# NUL, a lone surrogate (as its JSON escape, and as raw bytes in a form), and a
# megabyte of UTF-8 just under the body limit. Each is a 422 from validation.
_UNSTORABLE_JSON = [
    pytest.param(
        b'{"email": "a@example.com", "password": "12345678", "full_name": "a\\u0000b"}',
        id="nul-in-json",
    ),
    pytest.param(
        b'{"email": "a@example.com", "password": "1234\\ud8005678"}', id="lone-surrogate-escape"
    ),
    pytest.param(
        json.dumps(
            {"email": "a@example.com", "password": PASSWORD, "full_name": "\u00e9" * 500_000},
            ensure_ascii=False,
        ).encode(),
        id="a-megabyte-of-utf8",
    ),
]
_UNSTORABLE_FORM = [
    pytest.param(b"username=a%00b%40example.com&password=12345678", id="nul-in-form"),
    pytest.param(b"username=a%ED%A0%80%40example.com&password=12345678", id="surrogate-bytes"),
]


@pytest.mark.parametrize("body", _UNSTORABLE_JSON)
async def test_unstorable_text_in_a_signup_gets_422(launch: Launcher, body: bytes) -> None:
    service = await launch.service()
    _assert_problem_4xx(await _post(service, "application/json", body), 422)
    await _still_serving(service)


@pytest.mark.parametrize("body", _UNSTORABLE_FORM)
async def test_unstorable_text_in_a_login_form_gets_a_4xx(launch: Launcher, body: bytes) -> None:
    service = await launch.service()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
    }
    head = request_head("POST", "/api/v1/auth/token", service.port, headers)
    response = await exchange(service.port, head, [body], bound_seconds=TIMEOUT_SECONDS)
    assert response is not None, "The connection closed without an answer."
    assert 400 <= response.status < 500, response.describe()
    assert response.headers.get("content-type", "").startswith(PROBLEM_JSON), response.describe()
    await _still_serving(service)


async def test_body_over_1_mib_with_content_length_gets_413_before_it_is_sent(
    launch: Launcher,
) -> None:
    service = await launch.service()
    size = MIB + CHUNK
    headers = {"Content-Type": "application/json", "Content-Length": str(size)}
    head = request_head("POST", USERS, service.port, headers)
    chunks = [b" " * CHUNK] * (size // CHUNK)
    # Slowly: the answer must not wait for the whole body.
    response = await exchange(service.port, head, chunks, pause=0.01, bound_seconds=TIMEOUT_SECONDS)
    _assert_problem_4xx(response, 413)
    await _still_serving(service)


async def test_chunked_body_over_1_mib_gets_413_while_streaming(launch: Launcher) -> None:
    service = await launch.service()
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    head = request_head("POST", USERS, service.port, headers)
    # No Content-Length: only counting the bytes as they arrive can stop this one.
    piece = b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK)
    chunks = [piece] * (2 * MIB // CHUNK) + [b"0\r\n\r\n"]
    response = await exchange(service.port, head, chunks, pause=0.01, bound_seconds=TIMEOUT_SECONDS)
    _assert_problem_4xx(response, 413)
    await _still_serving(service)


async def test_100_kb_header_is_served_by_httptools_without_a_5xx(launch: Launcher) -> None:
    service = await launch.service()
    head = request_head("GET", "/health/live", service.port, {"X-Padding": "a" * 100_000})
    response = await exchange(service.port, head, bound_seconds=TIMEOUT_SECONDS)
    # uvicorn[standard] parses with httptools, which sets no limit on header size: the
    # request is served. (uvicorn's h11 parser would answer 400 past 16 KiB.) So the
    # bound on header size belongs to the reverse proxy in front (see docs/failure-modes.md).
    assert response is not None, "The connection closed without an answer."
    assert response.status == 200, response.describe()
    await _still_serving(service)


async def test_10_kb_request_id_is_replaced_not_echoed(launch: Launcher) -> None:
    service = await launch.service()
    huge = "r" * 10_000
    async with service.client() as client:
        response = await client.get("/health/live", headers={"X-Request-ID": huge})
    # The contract echoes only a sane id: an oversized one is not an error, it is ignored
    # and the response carries a fresh id instead (so logs never hold 10 KB of client text).
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert request_id != huge
    assert 0 < len(request_id) <= 128, request_id
    await _still_serving(service)


async def test_header_with_control_bytes_gets_400_from_the_server(launch: Launcher) -> None:
    service = await launch.service()
    head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: \x00\x01\r\n\r\n"
    response = await exchange(service.port, head, bound_seconds=TIMEOUT_SECONDS)
    # Refused by the HTTP parser before the app runs, so it is uvicorn's plain-text 400
    # ("Invalid HTTP request received."), not problem+json: no app code ever sees it.
    assert response is not None, "The connection closed without an answer."
    assert response.status == 400, response.describe()
    await _still_serving(service)


async def test_service_answers_after_many_hostile_requests(launch: Launcher) -> None:
    service = await launch.service()
    for _ in range(20):
        await _post(service, "application/json", b"{")
    async with service.client() as client:
        response = await client.post(
            USERS, json={"email": new_email("after"), "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        missing = await client.get("/no-such-route")
    # The error handlers are intact too: a 404 is still problem+json.
    assert missing.status_code == 404, missing.text
    assert missing.headers["content-type"].startswith(PROBLEM_JSON), missing.headers
