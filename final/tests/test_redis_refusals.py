"""Redis refusing commands (MISCONF, BUSY) is an outage to serve through; a bad script a bug."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import PASSWORD, HeadersFactory, UserFactory, make_settings, open_client
from tests.redis_fixtures import make_client
from tests.redis_server import RedisServer

from app.main import create_app
from app.redis_client import REDIS_ERRORS

USERS = "/api/v1/users"


@pytest.fixture
async def client_on_own_redis(
    redis_server: RedisServer,
    database: str,
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose Redis is the test's own server."""
    app = create_app(make_settings(redis_url=redis_server.url, redis_socket_timeout_seconds=1.0))
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        yield client


async def assert_the_api_serves(
    client: httpx.AsyncClient, headers: dict[str, str], user_id: str
) -> None:
    """Every kind of route answers as if Redis were down: no 5xx."""
    me = await client.get(f"{USERS}/me", headers=headers)
    assert me.status_code == 200, me.text
    assert (await client.get(f"{USERS}/{user_id}", headers=headers)).status_code == 200
    signed_up = await client.post(USERS, json={"email": "new@example.com", "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    login = await client.post(
        "/api/v1/auth/token", data={"username": "new@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text


async def wait_until_busy(client: Redis) -> None:
    """Return once the server answers BUSY."""
    while True:
        try:
            await client.ping()
        except ResponseError as error:
            if "busy" in str(error).lower():
                return
            raise
        await asyncio.sleep(0.01)


async def test_redis_refusing_writes_after_a_failed_snapshot_is_served_through(
    client_on_own_redis: httpx.AsyncClient,
    redis_server: RedisServer,
    user: UserFactory,
    auth_headers: HeadersFactory,
) -> None:
    ada = await user("ada@example.com")
    headers = await auth_headers(ada)
    await asyncio.to_thread(redis_server.refuse_writes)

    await assert_the_api_serves(client_on_own_redis, headers, str(ada.id))


async def test_redis_busy_with_a_long_script_is_served_through(
    client_on_own_redis: httpx.AsyncClient,
    redis_server: RedisServer,
    user: UserFactory,
    auth_headers: HeadersFactory,
) -> None:
    ada = await user("ada@example.com")
    headers = await auth_headers(ada)
    admin = make_client(redis_server.url, timeout=30)
    # After 10 ms of a running script, Redis answers every other command BUSY.
    await admin.config_set("busy-reply-threshold", 10)
    # Its own connection: the script holds it until SCRIPT KILL.
    runner = make_client(redis_server.url, timeout=30)
    busy = asyncio.create_task(runner.eval("while true do end", 0))
    try:
        await wait_until_busy(admin)
        await assert_the_api_serves(client_on_own_redis, headers, str(ada.id))
    finally:
        await admin.script_kill()
        with pytest.raises(ResponseError, match="killed"):
            await busy
        await runner.aclose()
        await admin.aclose()


async def test_refusals_count_as_unavailable(redis_server: RedisServer) -> None:
    client = make_client(redis_server.url, timeout=2)
    try:
        await asyncio.to_thread(redis_server.refuse_writes)
        with pytest.raises(REDIS_ERRORS):
            await client.set("k", "v")
        # Inside a script too: the script's SET gets the same refusal.
        with pytest.raises(REDIS_ERRORS):
            await client.eval("return redis.call('SET', KEYS[1], 'v')", 1, "k")
    finally:
        await client.aclose()


async def test_a_broken_script_is_a_bug_not_an_outage(redis: Redis) -> None:
    with pytest.raises(ResponseError) as caught:
        await redis.eval("return redis.call('NO_SUCH_COMMAND')", 0)
    # Not among the errors every caller falls back on: it surfaces as a 500 and a traceback.
    assert not isinstance(caught.value, REDIS_ERRORS)
