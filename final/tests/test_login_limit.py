"""The login limit: per client and per account, and never off, even without Redis."""

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import (
    PASSWORD,
    TokenFactory,
    UserFactory,
    assert_problem,
    bearer,
    make_settings,
    open_client,
)

from app.config import Settings
from app.main import create_app
from app.models import User
from app.security import PasswordHasher

# Every test starts from a flushed Redis: no count leaks in from another test.
pytestmark = pytest.mark.usefixtures("redis")

TOKEN = "/api/v1/auth/token"
WRONG_PASSWORD = "not the password"


@asynccontextmanager
async def running(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built with these settings (and this hasher, if given)."""
    overrides: dict[str, Any] = {"sessionmaker": sessionmaker}
    if hasher is not None:
        overrides["password_hasher"] = hasher
    async for client in open_client(create_app(settings), overrides):
        yield client


async def log_in(
    client: httpx.AsyncClient, email: str, password: str = WRONG_PASSWORD, **options: Any
) -> httpx.Response:
    return await client.post(TOKEN, data={"username": email, "password": password}, **options)


async def change_password(
    client: httpx.AsyncClient, access_token: str, current_password: str = WRONG_PASSWORD
) -> httpx.Response:
    return await client.patch(
        "/api/v1/users/me",
        headers=bearer(access_token),
        json={"password": "a brand new passphrase", "current_password": current_password},
    )


class CountingHasher(PasswordHasher):
    """The app's hasher, counting the password checks it runs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.checks = 0

    async def verify(self, password: str, password_hash: str) -> bool:
        """Check a password, and count the check."""
        self.checks += 1
        return await super().verify(password, password_hash)


async def test_the_login_after_the_limit_gets_429_with_retry_after(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory
) -> None:
    ada = await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        started = time.monotonic()
        attempts = [(await log_in(client, ada.email)).status_code for _ in range(3)]
        refused = await log_in(client, ada.email, PASSWORD)  # even the right password
        took = time.monotonic() - started

    assert attempts == [401] * 3
    body = assert_problem(refused, 429)
    # One login's worth of the minute (60 s / 3), less what the four logins took.
    retry_after = int(refused.headers["retry-after"])
    assert 20 - math.ceil(took) <= retry_after <= 20
    assert f"try again in {retry_after} seconds" in body["detail"]
    assert refused.headers["ratelimit-policy"] == '"login";q=3;w=60'


async def test_a_correct_login_within_the_limit_succeeds(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory
) -> None:
    ada = await user("ada@example.com")
    async with running(make_settings(login_rate_limit="3/minute"), sessionmaker) as client:
        await log_in(client, ada.email)
        r = await log_in(client, ada.email, PASSWORD)

    assert r.status_code == 200, r.text


async def test_one_account_is_limited_across_client_addresses(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        seen = [
            await log_in(client, "ada@example.com", headers={"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(3)
        ]

    assert [r.status_code for r in seen] == [401, 401, 429]
    # Refused by the account's count (each address is fresh): under the login policy too.
    assert seen[-1].headers["ratelimit-policy"] == '"login";q=2;w=60'


@pytest.mark.parametrize(
    ("guessed", "other"),
    [
        ("ada@example.com", "grace@example.com"),
        # Emails are compared lower-cased: upper-casing would merge "ß" with "ss"
        # and let guesses at one account refuse another's logins.
        ("straße@example.com", "strasse@example.com"),
    ],
    ids=["another account", "told apart only by upper case"],
)
async def test_one_accounts_guesses_leave_other_accounts_their_own_count(
    sessionmaker: async_sessionmaker[AsyncSession], guessed: str, other: str
) -> None:
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        for n in range(2):
            await log_in(client, guessed, headers={"X-Forwarded-For": f"203.0.113.{n}"})
        answer = await log_in(client, other, headers={"X-Forwarded-For": "203.0.113.9"})

    assert answer.status_code == 401, answer.text


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


async def test_one_clients_guesses_leave_other_clients_their_own_count(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Behind a trusted proxy, each forwarded address is a client of its own.
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        for n in range(2):
            await log_in(client, f"user{n}@example.com", headers={"X-Forwarded-For": "203.0.113.1"})
        other = await log_in(
            client, "user8@example.com", headers={"X-Forwarded-For": "203.0.113.2"}
        )
        same = await log_in(client, "user9@example.com", headers={"X-Forwarded-For": "203.0.113.1"})

    assert other.status_code == 401, other.text
    assert_problem(same, 429)


async def test_without_redis_logins_are_still_limited_by_the_process(
    sessionmaker: async_sessionmaker[AsyncSession], closed_port_url: str
) -> None:
    settings = make_settings(
        login_rate_limit="2/minute", redis_url=closed_port_url, redis_socket_timeout_seconds=0.3
    )
    async with running(settings, sessionmaker) as client:
        seen = [(await log_in(client, "ada@example.com")).status_code for _ in range(3)]
        metrics = (await client.get("/metrics")).text

    assert seen == [401, 401, 429]
    assert 'rate_limit_decisions_total{outcome="limited",route_class="login"} 1.0' in metrics


# --- every password check counts: current_password too ------------------------------


async def test_guessing_current_password_runs_into_the_login_limit_and_refusals_cost_no_hash(
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    user: UserFactory,
    token_pair: TokenFactory,
) -> None:
    ada = await user("ada@example.com")
    device = await token_pair(ada)
    settings = make_settings(login_rate_limit="5/minute")
    hasher = CountingHasher(settings)
    async with running(settings, sessionmaker, hasher) as client:
        guesses = [await change_password(client, device.access_token) for _ in range(30)]
        right = await change_password(client, device.access_token, PASSWORD)

    assert [r.status_code for r in guesses] == [403] * 5 + [429] * 25
    assert guesses[-1].headers["ratelimit-policy"] == '"login";q=5;w=60'
    assert_problem(right, 429)  # even the right one, as on the login route
    assert hasher.checks == 5  # a refused guess is never hashed
    stored = await session.scalar(select(User.password_hash).where(User.id == ada.id))
    assert stored == ada.password_hash


async def test_wrong_logins_from_elsewhere_use_up_the_accounts_count_for_current_password(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory, token_pair: TokenFactory
) -> None:
    ada = await user("ada@example.com")
    device = await token_pair(ada)
    settings = make_settings(login_rate_limit="2/minute", trusted_proxies="127.0.0.1")
    async with running(settings, sessionmaker) as client:
        for n in range(2):
            await log_in(client, ada.email, headers={"X-Forwarded-For": f"203.0.113.{n}"})
        # The device is somewhere else again: only the account's count is spent.
        r = await client.patch(
            "/api/v1/users/me",
            headers={**bearer(device.access_token), "X-Forwarded-For": "198.51.100.7"},
            json={"password": "a brand new passphrase", "current_password": PASSWORD},
        )

    assert_problem(r, 429)


async def test_wrong_logins_for_other_accounts_use_up_the_clients_count_for_current_password(
    sessionmaker: async_sessionmaker[AsyncSession], user: UserFactory, token_pair: TokenFactory
) -> None:
    ada = await user("ada@example.com")
    device = await token_pair(ada)
    async with running(make_settings(login_rate_limit="2/minute"), sessionmaker) as client:
        for n in range(2):
            await log_in(client, f"someone{n}@example.com")
        r = await change_password(client, device.access_token, PASSWORD)

    assert_problem(r, 429)
