"""Redis stopped, frozen (SIGSTOP) and restarted under a running app: fallbacks, then Redis again.

The closed-port and CLIENT PAUSE tests elsewhere start without Redis or stall
the shared server; these break a redis-server of the test's own, with the app's
pool already connected to it, in process (resilience/ does the same out of
process, under load). Every fault is undone in a finally.
"""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.conftest import (
    HeadersFactory,
    UserFactory,
    make_settings,
    open_client,
    sign_up_and_log_in,
)
from tests.lock_holder import lock_holder
from tests.redis_fixtures import FAULT_SOCKET_TIMEOUT, make_client
from tests.redis_server import RedisServer

from app.cache import user_key
from app.main import create_app
from app.models import User

ME = "/api/v1/users/me"
TOKEN = "/api/v1/auth/token"
# Small limits, so that a limit still counting would refuse within a few requests.
RATE_LIMIT, LOGIN_RATE_LIMIT = "4/minute", "2/minute"
# Bounds a hang of the app, should a Redis call ever wait without its timeout; times nothing.
HANG_BOUND_SECONDS = 30


def app_on(server: RedisServer) -> FastAPI:
    """An app whose Redis is this server, with the fault tests' short Redis timeouts."""
    return create_app(
        make_settings(
            redis_url=server.url,
            redis_socket_timeout_seconds=FAULT_SOCKET_TIMEOUT,
            redis_connect_timeout_seconds=FAULT_SOCKET_TIMEOUT,
            rate_limit=RATE_LIMIT,
            login_rate_limit=LOGIN_RATE_LIMIT,
        )
    )


@pytest.fixture
async def client_on_own_redis(
    redis_server: RedisServer, database: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on the test's own redis-server, inside the test transaction."""
    async for client in open_client(app_on(redis_server), {"sessionmaker": sessionmaker}):
        yield client


async def wrong_logins(client: httpx.AsyncClient, email: str, count: int) -> list[int]:
    """The statuses of `count` logins to this account with a wrong password."""
    data = {"username": email, "password": "not the password"}
    return [(await client.post(TOKEN, data=data)).status_code for _ in range(count)]


async def test_redis_stopped_then_restarted_falls_back_then_serves_from_redis_again(
    client_on_own_redis: httpx.AsyncClient,
    redis_server: RedisServer,
    session: AsyncSession,
    user: UserFactory,
    auth_headers: HeadersFactory,
) -> None:
    client = client_on_own_redis
    ada = await user("ada@example.com")
    headers = await auth_headers(ada)
    warm = [await client.get(ME, headers=headers) for _ in range(2)]
    assert [r.status_code for r in warm] == [200, 200], warm[-1].text
    assert "ratelimit" in warm[-1].headers  # counted in Redis
    own = make_client(redis_server.url, timeout=5.0)
    try:
        assert await own.get(user_key(str(ada.id))) == warm[-1].content
    finally:
        await own.aclose()

    await asyncio.to_thread(redis_server.stop)
    try:
        # The pool's connections are dead and reconnecting is refused.
        reads = [await client.get(ME, headers=headers) for _ in range(3)]
        logins = await wrong_logins(client, "ada@example.com", 3)
    finally:
        await asyncio.to_thread(redis_server.start)

    # Reads from PostgreSQL; the general limit failed open (2 + 3 requests past
    # its 4, none refused, nothing counted so no RateLimit header).
    assert [r.status_code for r in reads] == [200] * 3, reads[-1].text
    assert all(r.content == warm[-1].content for r in reads)
    assert not [r for r in reads if "ratelimit" in r.headers]
    # The login limit fell back to the process's own count: never no limit.
    assert logins == [401, 401, 429]

    # The same pool reconnects to the restarted (and empty) server: the first
    # read fills the cache again, the next one is answered from it.
    refill = await client.get(ME, headers=headers)
    assert refill.status_code == 200, refill.text
    assert "ratelimit" in refill.headers
    await session.execute(update(User).where(User.id == ada.id).values(full_name="Changed"))
    await session.commit()
    hit = await client.get(ME, headers=headers)
    assert hit.status_code == 200, hit.text
    # Changed behind the cache's back: only an answer from Redis still shows the old name.
    assert hit.content == refill.content == warm[-1].content


async def test_redis_frozen_mid_request_costs_timeouts_not_a_hang(
    redis_server: RedisServer, database: str, committed_email: str
) -> None:
    async for client in open_client(app_on(redis_server)):
        user_id, headers = await sign_up_and_log_in(client, committed_email)
        async with lock_holder(database) as holder:
            await holder.execute(
                "SELECT id FROM users WHERE email = :email FOR UPDATE", email=committed_email
            )
            patching = asyncio.create_task(
                client.patch(ME, json={"full_name": "Frozen"}, headers=headers)
            )
            # Its token check has been answered by Redis; its UPDATE now waits for the row.
            await holder.wait_until("the PATCH", lambda waiters: len(waiters) == 1, patching)
            await asyncio.to_thread(redis_server.pause)
            try:
                await holder.commit()
                async with asyncio.timeout(HANG_BOUND_SECONDS):
                    # Committed, then its invalidation meets the frozen Redis and times out.
                    patched = await patching
                    me = await client.get(ME, headers=headers)
                    (login,) = await wrong_logins(client, committed_email, 1)
            finally:
                await asyncio.to_thread(redis_server.resume)
        after = await client.get(ME, headers=headers)

    assert patched.status_code == 200, patched.text
    assert patched.json()["full_name"] == "Frozen"
    # Token check and user from PostgreSQL (so the new name), the general limit failed open.
    assert me.status_code == 200, me.text
    assert me.json()["full_name"] == "Frozen"
    assert "ratelimit" not in me.headers
    # A wrong password is still a 401, not a 5xx: the login limit counted it locally.
    assert login == 401
    # Thawed: the next request is counted in Redis again.
    assert after.status_code == 200, after.text
    assert "ratelimit" in after.headers
    assert after.json()["id"] == user_id
