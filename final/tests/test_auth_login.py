"""Logging in: the OAuth2 password flow, one answer for every bad credential."""

import json
import re

import httpx
import jwt
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
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
from app.repository import UserRepository
from app.security import PasswordHasher

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


# --- what a failed login costs ------------------------------------------------------

_ARGON2_PARAMETERS = re.compile(r"\$(m=\d+,t=\d+,p=\d+)\$")


@pytest.fixture
def checked_against(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Argon2 parameters of every hash a password is checked against, in order.

    The real check still runs: this only records what each login path pays for,
    which is what its response time reveals.
    """
    seen: list[str] = []
    real_verify = Argon2Hasher.verify

    def recording_verify(self: Argon2Hasher, password: str | bytes, stored: str | bytes) -> bool:
        found = _ARGON2_PARAMETERS.search(stored if isinstance(stored, str) else stored.decode())
        seen.append(found.group(1) if found else "?")
        return real_verify(self, password, stored)

    monkeypatch.setattr(Argon2Hasher, "verify", recording_verify)
    return seen


async def test_every_failed_login_pays_for_a_check_at_the_current_parameters(
    client: httpx.AsyncClient,
    settings: Settings,
    session: AsyncSession,
    user: UserFactory,
    checked_against: list[str],
) -> None:
    current = (
        f"m={settings.argon2_memory_kib},t={settings.argon2_time_cost},"
        f"p={settings.argon2_parallelism}"
    )
    cheaper = make_settings(argon2_memory_kib=settings.argon2_memory_kib // 4)
    await user("current@example.com")
    await UserRepository(session).create(
        email="old@example.com", password_hash=await PasswordHasher(cheaper).hash(PASSWORD)
    )
    await session.commit()
    paid: dict[str, list[str]] = {}
    for email in ("nobody@example.com", "current@example.com", "old@example.com"):
        checked_against.clear()
        assert_problem(await _login(client, email, "not the password"), 401)
        paid[email] = list(checked_against)
    # An unknown email is checked against the dummy hash, a wrong password
    # against the user's: at the current parameters, one check each.
    assert paid["nobody@example.com"] == [current], paid
    assert paid["current@example.com"] == [current], paid
    # A hash with older, cheaper parameters would answer sooner, telling such
    # accounts apart: its wrong password pays for the dummy check as well.
    assert paid["old@example.com"][0] != current, paid
    assert paid["old@example.com"][1:] == [current], paid


async def test_auth_routes_send_no_server_timing(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    # It would give a login's hashing time to a tenth of a millisecond, free of
    # network noise: the very measurement a timing attack needs.
    await user("ada@example.com")
    responses = [
        await _login(client, "ada@example.com"),
        await _login(client, "ada@example.com", "not the password"),
        await _login(client, "nobody@example.com"),
        await client.post("/api/v1/auth/refresh", json={"refresh_token": "x.y"}),
    ]
    assert [r.status_code for r in responses] == [200, 401, 401, 401], responses
    for r in responses:
        assert "server-timing" not in r.headers, (r.request.url, r.headers)
    # Elsewhere it stays: the time to first byte, for browser dev tools.
    assert (await client.get("/health/live")).headers["server-timing"].startswith("app;dur=")


async def test_the_longest_lifetimes_the_settings_allow_still_log_in_and_refresh(
    user: UserFactory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The bounds are where the settings stop: what they allow must work.
    longest = make_settings(
        access_token_ttl_seconds=86_400,
        refresh_token_ttl_seconds=31_536_000,
        cache_ttl_seconds=86_400,
    )
    await user("ada@example.com")
    async for client in open_client(create_app(longest), {"sessionmaker": sessionmaker}):
        login = await _login(client, "ada@example.com")
        assert login.status_code == 200, login.text
        assert login.json()["expires_in"] == 86_400
        me = await client.get("/api/v1/users/me", headers=bearer(login.json()["access_token"]))
        assert me.status_code == 200, me.text
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
