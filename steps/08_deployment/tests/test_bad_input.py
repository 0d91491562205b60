"""Every bad input a client can send to the users routes: a 4xx, never a 500, never echoed."""

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.conftest import assert_problem, bearer, log_in, promote, sign_up

pytestmark = pytest.mark.task("bad-input")

USERS = "/api/v1/users"
PASSWORD = "correct horse battery"
MEGABYTE_TEXT = "x" * 1_000_000  # under the 1 MiB body limit, so validation must refuse it


def signup(**changes: Any) -> dict[str, Any]:
    """A valid sign-up body with some fields changed."""
    return {"email": "ada@example.com", "password": PASSWORD, **changes}


@pytest.fixture
async def as_admin(client: httpx.AsyncClient, connection: AsyncConnection) -> None:
    """Send an admin's token on every request: the input is checked after the caller is."""
    admin = await sign_up(client, "admin@example.com", PASSWORD)
    await promote(connection, admin["id"])
    client.headers.update(bearer((await log_in(client, admin["email"], PASSWORD))["access_token"]))


def assert_refused_with_422(response: httpx.Response, *loc: str | int) -> None:
    """A 422 problem whose errors name the field, quoting no input back."""
    errors = assert_problem(response, 422)["errors"]
    assert list(loc) in [error["loc"] for error in errors], errors
    for error in errors:
        # Where, what and why: never the value, which may be a password.
        assert set(error) == {"loc", "msg", "type"}, error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "ada@example.com"}, "password"),
        (signup(email="not-an-email"), "email"),
        (signup(email=["ada@example.com"]), "email"),
        (signup(email=None), "email"),
        (signup(email="ada\u0000@example.com"), "email"),
        (signup(email="ada@exam\u0000ple.com"), "email"),
        (signup(email="a" * 10_000 + "@example.com"), "email"),
        (signup(email=MEGABYTE_TEXT), "email"),
        (signup(password="short"), "password"),
        (signup(password="p" * 129), "password"),
        (signup(password=12345678), "password"),
        (signup(password=None), "password"),
        (signup(password="correct\u0000horse"), "password"),
        (signup(password=MEGABYTE_TEXT), "password"),
        (signup(full_name=42), "full_name"),
        (signup(full_name=True), "full_name"),
        (signup(full_name={"first": "Ada"}), "full_name"),
        (signup(full_name="x" * 201), "full_name"),
        (signup(full_name="   "), "full_name"),
        (signup(full_name="Ada\u0000Lovelace"), "full_name"),
        (signup(full_name=MEGABYTE_TEXT), "full_name"),
        (signup(is_admin=True), "is_admin"),
        (signup(id=str(uuid.uuid4())), "id"),
    ],
)
async def test_sign_up_with_an_invalid_field_returns_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post(USERS, json=body)

    assert_refused_with_422(response, "body", field)
    assert PASSWORD not in response.text
    assert "xxxxxxxxxx" not in response.text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # Lone surrogates: valid JSON escapes, but no UTF-8 encoding exists for them.
        (b'{"email": "ada@example.com", "password": "correct \\ud800 horse"}', "password"),
        (b'{"email": "ada@example.com", "password": "correct \\udfff horse"}', "password"),
        (b'{"email": "ada\\ud800@example.com", "password": "correct horse"}', "email"),
        (
            b'{"email": "ada@example.com", "password": "correct horse", "full_name": "\\ud83d"}',
            "full_name",
        ),
    ],
)
async def test_sign_up_with_a_lone_surrogate_returns_422(
    client: httpx.AsyncClient, raw: bytes, field: str
) -> None:
    response = await client.post(USERS, content=raw, headers={"Content-Type": "application/json"})

    assert_refused_with_422(response, "body", field)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"email": "ada@example.com", "password": ', "application/json"),  # cut short
        (b"", "application/json"),
        (b"null", "application/json"),
        (b'"ada@example.com"', "application/json"),
        (json.dumps([signup()]).encode(), "application/json"),
        (b"\xff\xfe not UTF-8", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),  # deeper than any parser goes
        (json.dumps(signup()).encode(), "text/plain"),
        (b"email=ada%40example.com&password=correct+horse", "application/x-www-form-urlencoded"),
        (b"<user><email>ada@example.com</email></user>", "application/xml"),
    ],
)
async def test_sign_up_with_a_body_that_is_not_a_json_object_returns_4xx(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(USERS, content=content, headers={"Content-Type": content_type})

    assert response.status_code in (400, 422), response.text
    assert "correct" not in response.text


async def test_sign_up_without_a_content_type_returns_422(client: httpx.AsyncClient) -> None:
    response = await client.post(USERS, content=json.dumps(signup()).encode())

    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "user_id", ["not-a-uuid", "1", "0b7e3f52-8c0e-4a7e-9a38", "%00", "x" * 1000, "null"]
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.usefixtures("as_admin")
async def test_a_user_path_that_is_not_a_uuid_returns_422(
    client: httpx.AsyncClient, method: str, user_id: str
) -> None:
    body = {"full_name": "Ada"} if method == "PATCH" else None

    response = await client.request(method, f"{USERS}/{user_id}", json=body)

    assert_refused_with_422(response, "path", "user_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"full_name": 42}, "full_name"),
        ({"full_name": ["Ada"]}, "full_name"),
        ({"full_name": ""}, "full_name"),
        ({"full_name": "x" * 201}, "full_name"),
        ({"full_name": "Ada\u0000"}, "full_name"),
        ({"full_name": MEGABYTE_TEXT}, "full_name"),
        ({"email": "new@example.com"}, "email"),
        ({"password": "a new", "current_password": PASSWORD}, "password"),
        ({"password": "a new password", "current_password": 42}, "current_password"),
        ({"is_admin": True}, "is_admin"),
        ({"is_active": False}, "is_active"),
    ],
)
async def test_update_me_with_an_invalid_or_unknown_field_returns_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    created = await sign_up(client, "ada@example.com", PASSWORD)
    token = (await log_in(client, created["email"], PASSWORD))["access_token"]

    response = await client.patch(f"{USERS}/me", json=body, headers=bearer(token))

    assert_refused_with_422(response, "body", field)
    assert "a new" not in response.text


async def test_update_me_with_a_lone_surrogate_returns_422(client: httpx.AsyncClient) -> None:
    created = await sign_up(client, "ada@example.com", PASSWORD)
    token = (await log_in(client, created["email"], PASSWORD))["access_token"]

    response = await client.patch(
        f"{USERS}/me",
        content=b'{"full_name": "Ada \\udc00"}',
        headers={"Content-Type": "application/json", **bearer(token)},
    )

    assert_refused_with_422(response, "body", "full_name")


@pytest.mark.parametrize("limit", ["0", "-1", "101", "10000000000000000000000", "ten", "1.5", ""])
@pytest.mark.usefixtures("as_admin")
async def test_list_with_an_out_of_range_limit_returns_422(
    client: httpx.AsyncClient, limit: str
) -> None:
    response = await client.get(USERS, params={"limit": limit})

    assert_refused_with_422(response, "query", "limit")


def b64(raw: bytes) -> str:
    """URL-safe base64 without padding, as the service writes its cursors."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "é",
        "\u0000",
        "a" * 201,
        b64(b"not json"),
        b64(b"[1, 2]"),
        b64(b'["2026-01-02T03:04:05+00:00"]'),
        b64(b'["2026-01-02T03:04:05+00:00", "not-a-uuid"]'),
        # A timestamp without a zone: not one the service wrote.
        b64(b'["2026-01-02T03:04:05", "0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"]'),
        # The right shape with values of the wrong types.
        b64(b'["2026-01-02T03:04:05+00:00", 1]'),
        b64(b'[1, "0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"]'),
        b64(b'{"created_at": "2026-01-02T03:04:05+00:00"}'),
        # Valid timestamps whose UTC time is outside what Python (and so the
        # driver) can hold: year 0 and year 10000.
        b64(b'["0001-01-01T00:00:00+23:59", "0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"]'),
        b64(b'["9999-12-31T23:59:59-23:59", "0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"]'),
    ],
)
@pytest.mark.usefixtures("as_admin")
async def test_list_with_a_cursor_the_service_did_not_issue_returns_422(
    client: httpx.AsyncClient, cursor: str
) -> None:
    response = await client.get(USERS, params={"cursor": cursor})

    assert_refused_with_422(response, "query", "cursor")
