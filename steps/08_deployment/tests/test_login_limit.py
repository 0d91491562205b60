"""The login limit: per client and per account, and never off, even without Redis."""

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import PASSWORD, UserFactory, bearer, make_settings, open_client

from app.config import Settings
from app.main import create_app

# Every test starts from a flushed Redis: no count leaks in from another test.
pytestmark = [pytest.mark.task("login-limit"), pytest.mark.usefixtures("redis")]

TOKEN = "/api/v1/auth/token"
WRONG_PASSWORD = "not the password"


@asynccontextmanager
async def running(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with these settings."""
    async for client in open_client(create_app(settings), {"sessionmaker": sessionmaker}):
        yield client


async def log_in(
    client: httpx.AsyncClient, email: str, password: str = WRONG_PASSWORD, **options: Any
) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password}, **options)


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the Argon2 checks that run (the real check still runs): `len(password_checks)`."""
    seen: list[int] = []
    real_verify = Argon2Hasher.verify

    def counting_verify(self: Argon2Hasher, password: str | bytes, stored: str | bytes) -> bool:
        seen.append(1)
        return real_verify(self, password, stored)

    monkeypatch.setattr(Argon2Hasher, "verify", counting_verify)
    return seen


async def test_the_login_after_the_limit_gets_429_with_retry_after(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory
) -> None:
    ada = await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        started = time.monotonic()
        attempts = [(await log_in(client, ada["email"])).status_code for _ in range(3)]
        refused = await log_in(client, ada["email"], PASSWORD)  # even the right password
        took = time.monotonic() - started

    assert attempts == [401] * 3
    assert refused.status_code == 429, refused.text
    # One login's worth of the minute (60 s / 3), less what the four logins took.
    retry_after = int(refused.headers["retry-after"])
    assert 20 - math.ceil(took) <= retry_after <= 20
    assert f"try again in {retry_after} seconds" in refused.json()["detail"]
    assert refused.headers["ratelimit-policy"] == '"login";q=3;w=60'


async def test_a_correct_login_within_the_limit_succeeds(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory
) -> None:
    ada = await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        await log_in(client, ada["email"])
        r = await log_in(client, ada["email"], PASSWORD)

    assert r.status_code == 200, r.text


async def test_one_account_is_limited_across_client_addresses(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        seen = [
            (
                await log_in(
                    client, "ada@example.com", headers={"X-Forwarded-For": f"203.0.113.{n}"}
                )
            ).status_code
            for n in range(3)
        ]

    assert seen == [401, 401, 429]


async def test_one_account_is_limited_across_spellings_of_its_email(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Logins compare emails case-insensitively: so must the account's count, or
    # each spelling of the address would get a fresh quota of guesses.
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    spellings = ["ada@example.com", "ADA@Example.com", " ada@example.com "]
    async with running(settings, sessionmaker) as client:
        seen = [
            (await log_in(client, email, headers={"X-Forwarded-For": f"203.0.113.{n}"})).status_code
            for n, email in enumerate(spellings)
        ]

    assert seen == [401, 401, 429]


async def test_one_client_is_limited_across_accounts(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running(make_settings(login_rate_limit="2/minute"), sessionmaker) as client:
        seen = [(await log_in(client, f"user{n}@example.com")).status_code for n in range(3)]

    assert seen == [401, 401, 429]


async def test_without_redis_logins_are_still_limited_by_the_process(
    sessionmaker: async_sessionmaker[AsyncSession],
    closed_port_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    settings = make_settings(
        login_rate_limit="2/minute", redis_url=closed_port_url, redis_socket_timeout_seconds=0.3
    )
    async with running(settings, sessionmaker) as client:
        seen = [(await log_in(client, "ada@example.com")).status_code for _ in range(3)]

    # Never no limit: an outage of Redis must not open the door to guessing.
    assert seen == [401, 401, 429]
    assert any("rate limits are per process" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_refused_login_costs_no_password_check(
    sessionmaker: async_sessionmaker[AsyncSession],
    user: UserFactory,
    password_checks: list[int],
) -> None:
    await user("ada@example.com")
    async with running(make_settings(login_rate_limit="2/minute"), sessionmaker) as client:
        seen = [(await log_in(client, "ada@example.com")).status_code for _ in range(4)]

    assert seen == [401, 401, 429, 429]
    assert len(password_checks) == 2  # the two refused ones were turned away before hashing


async def test_guessing_current_password_runs_into_the_login_limit(
    sessionmaker: async_sessionmaker[AsyncSession],
    user: UserFactory,
    password_checks: list[int],
) -> None:
    # A stolen access token must not let its holder guess the password at hashing speed.
    await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        login = await log_in(client, "ada@example.com", PASSWORD)
        assert login.status_code == 200, login.text
        headers = bearer(login.json()["access_token"])
        password_checks.clear()
        seen = [
            (
                await client.patch(
                    "/api/v1/users/me",
                    headers=headers,
                    json={"password": "a brand new passphrase", "current_password": guess},
                )
            ).status_code
            for guess in ("guess one", "guess two", "guess three")
        ]

    # The login used one of the three; two guesses were checked, the third refused unhashed.
    assert seen == [403, 403, 429]
    assert len(password_checks) == 2
