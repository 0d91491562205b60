"""Logging in: the OAuth2 password flow, one 401 for every bad credential, what each path pays."""

import re

import httpx
import jwt
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
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

pytestmark = pytest.mark.task("tokens")

TOKEN = "/api/v1/auth/token"
BAD_CREDENTIALS = "The email or password is not correct."


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password})


def assert_bad_credentials(response: httpx.Response) -> None:
    """The one 401 of a failed login, whatever was wrong."""
    assert response.status_code == 401, response.text
    assert assert_problem(response, 401)["detail"] == BAD_CREDENTIALS
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_returns_a_token_pair_that_authenticates(
    client: httpx.AsyncClient, settings: Settings, user: UserFactory
) -> None:
    owner = await user("ada@example.com")

    r = await _login(client, "ADA@example.com")  # the email is compared case-insensitively

    assert r.status_code == 200, r.text
    pair = r.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == settings.access_token_ttl_seconds
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sub"] == owner["id"]
    assert claims["typ"] == "access"
    assert (claims["iss"], claims["aud"]) == (settings.jwt_issuer, settings.jwt_audience)
    # The refresh token is "<session id>.<secret>", the session the access token names.
    assert pair["refresh_token"].split(".")[0] == claims["sid"]
    me = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == owner["id"]


async def test_login_never_stores_the_refresh_token_in_clear(
    client: httpx.AsyncClient, connection: AsyncConnection, user: UserFactory
) -> None:
    await user("ada@example.com")

    pair = (await _login(client, "ada@example.com")).json()

    session_id, secret = pair["refresh_token"].split(".", 1)
    stored = await connection.scalar(
        text("SELECT refresh_token_hash FROM auth_sessions WHERE id = :id"), {"id": session_id}
    )
    assert stored is not None
    assert secret not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", stored), stored  # SHA-256, hex


async def test_wrong_password_unknown_email_and_deactivated_account_get_one_401(
    client: httpx.AsyncClient, user: UserFactory
) -> None:
    await user("ada@example.com")
    await user("gone@example.com", is_active=False)

    for email, password in [
        ("ada@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
        ("gone@example.com", PASSWORD),
    ]:
        assert_bad_credentials(await _login(client, email, password))


@pytest.mark.parametrize(
    "form",
    [
        {"username": "ada@example.com"},
        {"password": PASSWORD},
        {},
        {"username": "a", "password": PASSWORD, "grant_type": "client_credentials"},
        {"username": "a\x00", "password": PASSWORD},
    ],
)
async def test_login_with_a_bad_form_returns_422_without_echoing_it(
    client: httpx.AsyncClient, form: dict[str, str]
) -> None:
    r = await client.post(TOKEN, data=form)

    assert r.status_code == 422, r.text
    assert PASSWORD not in r.text


async def test_login_with_json_body_returns_422(client: httpx.AsyncClient) -> None:
    r = await client.post(TOKEN, json={"username": "ada@example.com", "password": PASSWORD})

    assert r.status_code == 422, r.text


async def test_login_upgrades_a_hash_made_with_older_parameters(
    connection: AsyncConnection,
    user: UserFactory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner = await user("ada@example.com")
    stored = text("SELECT password_hash FROM users WHERE id = :id")
    before = await connection.scalar(stored, {"id": owner["id"]})
    stronger = make_settings(argon2_time_cost=2)

    async for client in open_client(create_app(stronger), {"sessionmaker": sessionmaker}):
        r = await _login(client, "ada@example.com")
        assert r.status_code == 200, r.text

    after = await connection.scalar(stored, {"id": owner["id"]})
    assert after != before
    assert ",t=2," in after


# --- what a failed login costs: a structural timing check --------------------------
# Not a stopwatch (a timed assert would be noise on a shared machine): which
# Argon2 checks each path runs, and at which parameters. Equal work, equal time.

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
    sessionmaker: async_sessionmaker[AsyncSession],
    user: UserFactory,
    checked_against: list[str],
) -> None:
    current = (
        f"m={settings.argon2_memory_kib},t={settings.argon2_time_cost},"
        f"p={settings.argon2_parallelism}"
    )
    await user("current@example.com")
    # A user who signed up while the cost was lower (an app built with cheaper settings).
    cheaper = make_settings(argon2_memory_kib=settings.argon2_memory_kib // 4)
    async for old_client in open_client(create_app(cheaper), {"sessionmaker": sessionmaker}):
        signed_up = await old_client.post(
            "/api/v1/users", json={"email": "old@example.com", "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
    paid: dict[str, list[str]] = {}
    for email in ("nobody@example.com", "current@example.com", "old@example.com"):
        checked_against.clear()
        assert_bad_credentials(await _login(client, email, "not the password"))
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
    longest = make_settings(access_token_ttl_seconds=86_400, refresh_token_ttl_seconds=31_536_000)
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


async def test_swagger_uis_authorize_button_logs_in_through_the_token_route(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()

    schemes = schema["components"]["securitySchemes"]
    assert list(schemes) == ["OAuth2PasswordBearer"]
    assert schemes["OAuth2PasswordBearer"]["type"] == "oauth2"
    assert schemes["OAuth2PasswordBearer"]["flows"] == {
        "password": {"scopes": {}, "tokenUrl": "/api/v1/auth/token"}
    }
    # The routes behind the token check say so, and the anonymous ones do not.
    assert schema["paths"]["/api/v1/users/me"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    assert "security" not in schema["paths"]["/api/v1/auth/token"]["post"]
