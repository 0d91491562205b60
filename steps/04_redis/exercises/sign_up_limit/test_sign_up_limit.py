"""Exercise: sign-ups get a stricter limit of their own, SIGNUP_RATE_LIMIT, per client."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import make_settings, open_client

from app.config import SettingsError, load_settings
from app.main import create_app

USERS = "/api/v1/users"

pytestmark = pytest.mark.usefixtures("redis")


def sign_up_body(n: int) -> dict[str, str]:
    return {"email": f"user{n}@example.com", "password": "correct horse battery"}


async def test_the_sign_up_past_its_limit_gets_429_while_reads_go_on(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(signup_rate_limit="2/minute", rate_limit="100/minute")
    async for client in open_client(create_app(settings), {"sessionmaker": sessionmaker}):
        signed_up = [await client.post(USERS, json=sign_up_body(n)) for n in range(3)]
        listed = await client.get(USERS)

    assert [r.status_code for r in signed_up] == [201, 201, 429], signed_up[-1].text
    refused = signed_up[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == '"signup";q=2;w=60'
    # The general limit still counts, and still has room.
    assert listed.status_code == 200, listed.text


async def test_the_sign_up_limit_is_per_client(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    settings = make_settings(signup_rate_limit="1/minute", trusted_proxies="127.0.0.1")
    async for client in open_client(create_app(settings), {"sessionmaker": sessionmaker}):
        first = await client.post(
            USERS, json=sign_up_body(1), headers={"X-Forwarded-For": "203.0.113.1"}
        )
        other_client = await client.post(
            USERS, json=sign_up_body(2), headers={"X-Forwarded-For": "203.0.113.2"}
        )
        same_client = await client.post(
            USERS, json=sign_up_body(3), headers={"X-Forwarded-For": "203.0.113.1"}
        )

    assert (first.status_code, other_client.status_code) == (201, 201), first.text
    assert same_client.status_code == 429, same_client.text


def test_a_bad_sign_up_limit_stops_start_up_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNUP_RATE_LIMIT", "lots")

    with pytest.raises(SettingsError, match="SIGNUP_RATE_LIMIT"):
        load_settings()
