"""Logging in: the OAuth2 password flow, one answer for every bad credential."""

import json

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import (
    PASSWORD,
    UserFactory,
    assert_problem,
    bearer,
    make_settings,
    open_client,
)

from app.config import Settings
from app.main import create_app
from app.models import AuthSession, User

TOKEN = "/api/v1/auth/token"


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password})


async def test_login_returns_a_token_pair_that_authenticates(
    client: httpx.AsyncClient, settings: Settings, user: UserFactory
) -> None:
    owner = await user("ada@example.com")
    r = await _login(client, "ADA@example.com")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    claims = jwt.decode(
        body["access_token"],
        settings.secret_key.get_secret_value(),
        algorithms=["HS256"],
        audience=settings.jwt_audience,
    )
    assert claims["sub"] == str(owner.id)
    assert claims["typ"] == "access"
    assert {"sid", "jti", "iat", "nbf", "exp", "iss"} <= set(claims)
    me = await client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(owner.id)


async def test_login_never_stores_the_refresh_token_in_clear(
    client: httpx.AsyncClient, session: AsyncSession, user: UserFactory
) -> None:
    await user("ada@example.com")
    r = await _login(client, "ada@example.com")
    assert r.status_code == 200, r.text
    secret = r.json()["refresh_token"].split(".", 1)[1]
    stored = (await session.scalars(select(AuthSession.refresh_token_hash))).all()
    assert len(stored) == 1
    assert secret not in stored[0]


async def test_login_with_wrong_password_and_unknown_user_give_identical_401_bodies(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")
    wrong_password = await _login(client, "ada@example.com", "not the password")
    unknown_user = await _login(client, "nobody@example.com")
    bodies = []
    for r in (wrong_password, unknown_user):
        body = assert_problem(r, 401)
        # Only the request id differs (it is per request by design).
        del body["request_id"]
        bodies.append(json.dumps(body, sort_keys=True))
    assert bodies[0] == bodies[1]
    assert wrong_password.headers["www-authenticate"] == unknown_user.headers["www-authenticate"]


async def test_login_of_a_deactivated_user_returns_the_same_401(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com", is_active=False)
    body = assert_problem(await _login(client, "ada@example.com"), 401)
    assert body["detail"] == "The email or password is not correct."


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"username": "ada@example.com"},
        {"password": PASSWORD},
        {"username": "a", "password": PASSWORD, "grant_type": "client_credentials"},
    ],
)
async def test_login_with_incomplete_form_returns_422_without_echoing_it(
    client: httpx.AsyncClient, form: dict[str, str]
) -> None:
    r = await client.post(TOKEN, data=form)
    body = assert_problem(r, 422)
    assert body["errors"]
    assert PASSWORD not in r.text


async def test_login_with_json_body_returns_422(client: httpx.AsyncClient) -> None:
    r = await client.post(TOKEN, json={"username": "ada@example.com", "password": PASSWORD})
    assert_problem(r, 422)


async def test_login_upgrades_a_hash_made_with_older_parameters(
    session: AsyncSession,
    user: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner = await user("ada@example.com")
    stronger = make_settings(argon2_time_cost=2)
    async for client in open_client(create_app(stronger), {"sessionmaker": sessionmaker}):
        r = await _login(client, "ada@example.com")
        assert r.status_code == 200, r.text
    stored = (await session.scalars(select(User.password_hash).where(User.id == owner.id))).one()
    assert stored != owner.password_hash
    assert "t=2" in stored
