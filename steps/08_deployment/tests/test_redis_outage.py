"""Redis gone, frozen or refusing: reads from PostgreSQL, the limit open, /health/ready degraded."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from tests.conftest import bearer, log_in, make_settings, open_client
from tests.redis_server import RedisServer

from app.main import create_app

USERS = "/api/v1/users"
PASSWORD = "correct horse battery"
# Short, so each call to a frozen Redis gives up quickly; long enough for a busy machine.
FAULT_TIMEOUT = 0.3

pytestmark = pytest.mark.task("outage")

QueryCounter = Callable[[], int]


@pytest.fixture
def user_queries(connection: AsyncConnection) -> Iterator[QueryCounter]:
    """Count the SELECTs of users the app sends (on the test's connection)."""
    selects: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Reads of a user's row; not the token check's (a join from auth_sessions).
        select = statement.lstrip().upper().startswith("SELECT")
        if select and "users" in statement and "auth_sessions" not in statement:
            selects.append(statement)

    event.listen(connection.engine.sync_engine, "before_cursor_execute", record)
    yield lambda: len(selects)
    event.remove(connection.engine.sync_engine, "before_cursor_execute", record)


async def client_for(
    redis_url: str, sessionmaker: async_sessionmaker[AsyncSession], **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on this Redis, with short Redis timeouts."""
    app = create_app(
        make_settings(
            redis_url=redis_url,
            redis_socket_timeout_seconds=FAULT_TIMEOUT,
            redis_connect_timeout_seconds=FAULT_TIMEOUT,
            **settings,
        )
    )
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        yield client


@pytest.fixture
async def own_redis_client(
    redis_server: RedisServer, database: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose Redis is the test's own server, to stop and pause."""
    async for client in client_for(redis_server.url, sessionmaker):
        yield client


async def sign_up(client: httpx.AsyncClient, email: str = "ada@example.com") -> str:
    r = await client.post(USERS, json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def logged_in(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, str]:
    """Log in (the login limit falls back to a per-process one without Redis)."""
    return bearer((await log_in(client, email, PASSWORD))["access_token"])


async def ready(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_with_redis_unreachable_everything_works_from_postgresql(
    closed_port_url: str,
    database: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_queries: QueryCounter,
) -> None:
    async for client in client_for(closed_port_url, sessionmaker):
        user_id = await sign_up(client)
        headers = await logged_in(client)
        before = user_queries()
        reads = [await client.get(f"{USERS}/{user_id}", headers=headers) for _ in range(2)]
        queried = user_queries() - before
        patched = await client.patch(f"{USERS}/me", json={"full_name": "Ada"}, headers=headers)
        after = await client.get(f"{USERS}/{user_id}", headers=headers)
        health = await ready(client)

    assert [r.status_code for r in reads] == [200, 200], reads[0].text
    assert queried == 2  # no cache: each read is a query
    assert patched.status_code == 200, patched.text
    assert after.json()["full_name"] == "Ada"
    assert health == {"status": "degraded", "checks": {"database": "ok", "redis": "unavailable"}}


async def test_with_redis_unreachable_the_limit_fails_open_and_says_so(
    closed_port_url: str,
    database: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async for client in client_for(closed_port_url, sessionmaker, rate_limit="1/minute"):
        responses = [
            await client.post(USERS, json={"email": f"u{n}@example.com", "password": PASSWORD})
            for n in range(3)
        ]

    assert [r.status_code for r in responses] == [201, 201, 201], responses[0].text
    # Nothing was counted, so no RateLimit header pretends otherwise.
    assert "ratelimit" not in responses[0].headers
    assert any("rate limit is not enforced" in record.getMessage() for record in caplog.records), (
        caplog.text
    )


async def test_redis_stopped_then_started_again(
    own_redis_client: httpx.AsyncClient,
    redis_server: RedisServer,
    user_queries: QueryCounter,
) -> None:
    client = own_redis_client
    user_id = await sign_up(client)
    headers = await logged_in(client)
    assert (await client.get(f"{USERS}/{user_id}", headers=headers)).status_code == 200  # cached

    await asyncio.to_thread(redis_server.stop)
    before = user_queries()
    during = [await client.get(f"{USERS}/{user_id}", headers=headers) for _ in range(2)]
    assert [r.status_code for r in during] == [200, 200], during[0].text
    assert user_queries() == before + 2  # from PostgreSQL
    assert (await ready(client))["status"] == "degraded"

    # Back, empty (it kept nothing): the same process caches again, no restart needed.
    await asyncio.to_thread(redis_server.start)
    before = user_queries()
    after = [await client.get(f"{USERS}/{user_id}", headers=headers) for _ in range(2)]
    assert [r.status_code for r in after] == [200, 200], after[0].text
    assert user_queries() == before + 1
    assert (await ready(client))["status"] == "ok"


async def test_redis_frozen_then_resumed(
    own_redis_client: httpx.AsyncClient,
    redis_server: RedisServer,
    user_queries: QueryCounter,
) -> None:
    client = own_redis_client
    user_id = await sign_up(client)
    headers = await logged_in(client)
    assert (await client.get(f"{USERS}/{user_id}", headers=headers)).status_code == 200  # cached

    redis_server.pause()
    try:
        # Each Redis call gives up after its timeout; PostgreSQL answers.
        during = await client.get(f"{USERS}/{user_id}", headers=headers)
        health = await ready(client)
    finally:
        redis_server.resume()

    assert during.status_code == 200, during.text
    assert health["checks"] == {"database": "ok", "redis": "unavailable"}
    before = user_queries()
    for _ in range(2):
        assert (await client.get(f"{USERS}/{user_id}", headers=headers)).status_code == 200
    assert user_queries() == before  # the cache answers again
    assert (await ready(client))["status"] == "ok"


async def test_redis_refusing_writes_is_served_through(
    own_redis_client: httpx.AsyncClient,
    redis_server: RedisServer,
) -> None:
    client = own_redis_client
    user_id = await sign_up(client)
    headers = await logged_in(client)
    # A snapshot that failed (a full disk): Redis refuses writes, and PING, with MISCONF.
    await asyncio.to_thread(redis_server.refuse_writes)

    read = await client.get(f"{USERS}/{user_id}", headers=headers)
    signed_up = await client.post(USERS, json={"email": "new@example.com", "password": PASSWORD})
    patched = await client.patch(f"{USERS}/me", json={"full_name": "Ada"}, headers=headers)

    assert read.status_code == 200, read.text
    assert signed_up.status_code == 201, signed_up.text
    assert patched.status_code == 200, patched.text
    assert (await ready(client))["status"] == "degraded"
