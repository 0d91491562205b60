"""The users API: sign-up, validation, pagination; tests/test_auth_*.py cover who may call what."""

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
from tests.conftest import PASSWORD, UserFactory, assert_problem, bearer

USERS = "/api/v1/users"


def _signup(email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    return {"email": email, "password": "correct horse battery", **extra}


async def test_create_user_returns_201_with_the_public_user(client: httpx.AsyncClient) -> None:
    r = await client.post(USERS, json=_signup(full_name="Ada Lovelace"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {
        "id",
        "email",
        "full_name",
        "is_active",
        "is_admin",
        "created_at",
        "updated_at",
    }
    assert body["email"] == "ada@example.com"
    assert body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True
    assert body["is_admin"] is False
    uuid.UUID(body["id"])
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"]


async def test_create_user_stores_the_email_lower_cased(client: httpx.AsyncClient) -> None:
    r = await client.post(USERS, json=_signup("Grace.Hopper@Example.COM"))
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "grace.hopper@example.com"


async def test_create_user_never_returns_the_password_or_its_hash(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(USERS, json=_signup())
    assert r.status_code == 201, r.text
    assert "correct horse battery" not in r.text
    assert "argon2" not in r.text


async def test_create_user_with_taken_email_in_other_case_returns_409(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post(USERS, json=_signup("ada@example.com"))
    assert first.status_code == 201, first.text
    r = await client.post(USERS, json=_signup("ADA@Example.com"))
    body = assert_problem(r, 409)
    assert "already exists" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": "correct horse battery"}, "email"),
        ({"email": "ada@example.com"}, "password"),
        (_signup("not-an-email"), "email"),
        (_signup(password="short"), "password"),
        (_signup(password="x" * 129), "password"),
        (_signup(password=12345678), "password"),
        (_signup(email=["ada@example.com"]), "email"),
        (_signup(full_name=42), "full_name"),
        (_signup(full_name="x" * 201), "full_name"),
        (_signup(full_name="   "), "full_name"),
        (_signup("a" * 10_000 + "@example.com"), "email"),
        (_signup(is_admin=True), "is_admin"),
    ],
)
async def test_create_user_with_invalid_body_returns_422_without_echoing_input(
    client: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    r = await client.post(USERS, json=payload)
    body = assert_problem(r, 422)
    assert [field] in [error["loc"][1:] for error in body["errors"]], body
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}
    assert "correct horse battery" not in r.text
    assert "xxxxxxxx" not in r.text


async def test_create_user_with_long_password_is_refused_not_truncated(
    client: httpx.AsyncClient,
) -> None:
    longest = "".join(chr(ord("a") + n % 26) for n in range(128))
    r = await client.post(USERS, json=_signup(password=longest))
    assert r.status_code == 201, r.text
    r = await client.post(USERS, json=_signup("bob@example.com", password="p" * 129))
    assert_problem(r, 422)
    # Every one of the 128 characters counts: a hash of a truncated password
    # would let its first 127 characters in as well.
    token = "/api/v1/auth/token"
    shorter = await client.post(
        token, data={"username": "ada@example.com", "password": longest[:127]}
    )
    assert_problem(shorter, 401)
    whole = await client.post(token, data={"username": "ada@example.com", "password": longest})
    assert whole.status_code == 200, whole.text


async def test_create_user_with_malformed_json_returns_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        USERS,
        content=b'{"email": "ada@example.com", "password": ',
        headers={"content-type": "application/json"},
    )
    body = assert_problem(r, 422)
    assert body["errors"][0]["type"] == "json_invalid"


async def test_create_user_with_form_content_type_returns_422(client: httpx.AsyncClient) -> None:
    r = await client.post(USERS, data={"email": "ada@example.com", "password": "long enough"})
    assert_problem(r, 422)


async def test_create_user_with_json_array_body_returns_422(client: httpx.AsyncClient) -> None:
    r = await client.post(USERS, json=[_signup()])
    assert_problem(r, 422)


SOME_ID = "0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"
PROTECTED = [
    ("GET", f"{USERS}/me", None),
    ("PATCH", f"{USERS}/me", {"full_name": "New Name"}),
    ("GET", f"{USERS}/{SOME_ID}", None),
    ("GET", f"{USERS}/not-a-uuid", None),
    ("GET", USERS, None),
    ("GET", f"{USERS}?limit=-1&cursor=garbage", None),
    ("PATCH", f"{USERS}/{SOME_ID}", {"is_admin": True}),
    ("DELETE", f"{USERS}/{SOME_ID}", None),
]


@pytest.mark.parametrize(("method", "url", "payload"), PROTECTED)
async def test_protected_route_without_token_returns_401_with_bearer_challenge(
    client: httpx.AsyncClient, method: str, url: str, payload: dict[str, Any] | None
) -> None:
    r = await client.request(method, url, json=payload)
    assert_problem(r, 401)


@pytest.mark.parametrize(("method", "url", "payload"), PROTECTED)
async def test_protected_route_with_invalid_token_returns_401_with_invalid_token_challenge(
    client: httpx.AsyncClient, method: str, url: str, payload: dict[str, Any] | None
) -> None:
    headers = {"Authorization": "Bearer not.a.token"}
    r = await client.request(method, url, json=payload, headers=headers)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.fixture
async def as_admin(client: httpx.AsyncClient, user: UserFactory) -> None:
    """Make the client's requests as a real admin, logged in through the login route."""
    admin = await user("root@example.com", is_admin=True)
    r = await client.post(
        "/api/v1/auth/token", data={"username": admin.email, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    client.headers.update(bearer(r.json()["access_token"]))


def _crafted_cursor(*values: object) -> str:
    """A cursor of the service's shape (base64 of a JSON list) holding any values."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


_SOME_ID = "0b7e3f52-8c0e-4a7e-9a38-9f1c1c2f6a11"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "bm90IGpzb24",
        "WzEsIDJd",
        "a" * 500,
        _crafted_cursor("2024-01-01T00:00:00+00:00", 5),
        # Valid timestamps whose UTC time is outside what Python (and so the
        # driver) can hold: year 0 and year 10000.
        _crafted_cursor("0001-01-01T00:00:00+23:59", _SOME_ID),
        _crafted_cursor("9999-12-31T23:59:59-23:59", _SOME_ID),
    ],
)
async def test_list_users_with_garbage_cursor_returns_422(
    client: httpx.AsyncClient, as_admin: None, cursor: str
) -> None:
    body = assert_problem(await client.get(USERS, params={"cursor": cursor}), 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("limit", ["0", "-1", "101", "10000000000000000000000", "ten"])
async def test_list_users_with_out_of_range_limit_returns_422(
    client: httpx.AsyncClient, as_admin: None, limit: str
) -> None:
    body = assert_problem(await client.get(f"{USERS}?limit={limit}"), 422)
    assert body["errors"][0]["loc"] == ["query", "limit"]


async def test_list_users_pages_through_every_user_once(
    client: httpx.AsyncClient, as_admin: None
) -> None:
    for n in range(5):
        r = await client.post(USERS, json=_signup(f"user{n}@example.com"))
        assert r.status_code == 201, r.text
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get(USERS, params=params)
        assert r.status_code == 200, r.text
        seen += [user["email"] for user in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["root@example.com", *(f"user{n}@example.com" for n in range(5))]


async def test_get_user_with_invalid_uuid_returns_422(
    client: httpx.AsyncClient, as_admin: None
) -> None:
    body = assert_problem(await client.get(f"{USERS}/not-a-uuid"), 422)
    assert body["errors"][0]["loc"] == ["path", "user_id"]
