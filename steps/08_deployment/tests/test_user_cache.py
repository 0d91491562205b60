"""GET /users/{id} through the cache: hits, one query for a stampede, no stale row after a write."""

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from tests.conftest import (
    bearer,
    delete_all_users,
    log_in,
    make_settings,
    open_client,
    promote,
    with_lifespan_state,
)

from app.main import create_app

USERS = "/api/v1/users"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.task("cache")

QueryCounter = Callable[[str], int]


async def sign_up(client: httpx.AsyncClient, email: str = "ada@example.com", **extra: Any) -> str:
    """Sign a user up; return the new id."""
    r = await client.post(USERS, json={"email": email, "password": PASSWORD, **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def logged_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Log in; the header of a session whose check is already in Redis (its marker).

    One authenticated request first (the session list, which reads no user row):
    the token check then costs no query, and the tests below count only user reads.
    """
    headers = bearer((await log_in(client, email, PASSWORD))["access_token"])
    assert (await client.get("/api/v1/auth/sessions", headers=headers)).status_code == 200
    return headers


async def as_admin(client: httpx.AsyncClient, connection: AsyncConnection) -> dict[str, str]:
    """Sign an admin up; their logged-in header."""
    await promote(connection, await sign_up(client, "admin@example.com"))
    return await logged_in(client, "admin@example.com")


@pytest.fixture
def user_queries(connection: AsyncConnection) -> Iterator[QueryCounter]:
    """Count the SQL statements the app sends about one user id (on the test's connection)."""
    statements: list[tuple[str, str]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, repr(parameters)))

    event.listen(connection.engine.sync_engine, "before_cursor_execute", record)

    def count(user_id: str) -> int:
        # Reads of the user's row; not the token check's (a join from auth_sessions).
        return sum(
            1
            for sql, params in statements
            if "users" in sql and "auth_sessions" not in sql and user_id in params
        )

    yield count
    event.remove(connection.engine.sync_engine, "before_cursor_execute", record)


async def test_a_second_read_is_answered_without_the_database(
    client: httpx.AsyncClient, user_queries: QueryCounter
) -> None:
    user_id = await sign_up(client, full_name="Ada")
    headers = await logged_in(client, "ada@example.com")
    before = user_queries(user_id)

    first = await client.get(f"{USERS}/{user_id}", headers=headers)
    second = await client.get(f"{USERS}/{user_id}", headers=headers)

    assert first.status_code == second.status_code == 200, first.text
    assert user_queries(user_id) == before + 1
    # Byte for byte the same answer, from PostgreSQL's row or from Redis.
    assert second.content == first.content
    assert first.json()["full_name"] == "Ada"


async def test_fifty_concurrent_reads_of_a_cold_user_query_the_database_once(
    client: httpx.AsyncClient, user_queries: QueryCounter
) -> None:
    user_id = await sign_up(client)
    headers = await logged_in(client, "ada@example.com")
    before = user_queries(user_id)

    responses = await asyncio.gather(
        *(client.get(f"{USERS}/{user_id}", headers=headers) for _ in range(50))
    )

    assert [r.status_code for r in responses] == [200] * 50, responses[0].text
    assert len({r.content for r in responses}) == 1
    assert user_queries(user_id) == before + 1


async def test_a_read_after_an_update_sees_the_update(client: httpx.AsyncClient) -> None:
    user_id = await sign_up(client, full_name="Old")
    headers = await logged_in(client, "ada@example.com")
    read = f"{USERS}/{user_id}"
    assert (await client.get(read, headers=headers)).json()["full_name"] == "Old"  # cached

    patched = await client.patch(f"{USERS}/me", json={"full_name": "New"}, headers=headers)

    assert patched.status_code == 200, patched.text
    assert (await client.get(read, headers=headers)).json()["full_name"] == "New"


async def test_a_read_after_a_delete_is_404(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    user_id = await sign_up(client)
    headers, admin = await logged_in(client, "ada@example.com"), await as_admin(client, connection)
    assert (await client.get(f"{USERS}/{user_id}", headers=admin)).status_code == 200  # cached

    assert (await client.delete(f"{USERS}/{user_id}", headers=headers)).status_code == 204

    assert (await client.get(f"{USERS}/{user_id}", headers=admin)).status_code == 404


async def test_an_unknown_user_is_404_every_time(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    unknown, admin = uuid.uuid4(), await as_admin(client, connection)

    codes = [(await client.get(f"{USERS}/{unknown}", headers=admin)).status_code for _ in range(2)]

    assert codes == [404, 404]


async def test_with_the_cache_disabled_every_read_queries_the_database(
    database: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_queries: QueryCounter,
) -> None:
    app = create_app(make_settings(cache_enabled=False))
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        user_id = await sign_up(client)
        headers = await logged_in(client, "ada@example.com")
        before = user_queries(user_id)
        for _ in range(2):
            assert (await client.get(f"{USERS}/{user_id}", headers=headers)).status_code == 200

    assert user_queries(user_id) == before + 2


# --- the stale write-back race ---------------------------------------------------------


async def test_a_read_that_queried_before_a_write_cannot_cache_the_old_row(
    app: FastAPI, database: str
) -> None:
    """A reader reads the row, a write commits, then the reader stores what it read."""
    started, release = asyncio.Event(), asyncio.Event()
    armed = False

    class SlowReads(AsyncSession):
        """Sessions whose next SELECT, once armed, holds its result until released."""

        async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal armed
            result = await super().execute(statement, *args, **kwargs)
            if armed and getattr(statement, "is_select", False):
                armed = False
                started.set()
                await release.wait()
            return result

    try:
        async with app.router.lifespan_context(app) as state:
            # Real commits on the app's pool: the reader and the writer are two transactions.
            slow = async_sessionmaker(state["engine"], class_=SlowReads, expire_on_commit=False)
            transport = httpx.ASGITransport(
                app=with_lifespan_state(app, {**state, "sessionmaker": slow})
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                user_id = await sign_up(client, full_name="Old")
                headers = await logged_in(client, "ada@example.com")
                armed = True
                reader = asyncio.create_task(client.get(f"{USERS}/{user_id}", headers=headers))
                async with asyncio.timeout(30):  # a guard against a hang, not a speed check
                    await started.wait()

                patched = await client.patch(
                    f"{USERS}/me", json={"full_name": "New"}, headers=headers
                )
                assert patched.status_code == 200, patched.text
                release.set()

                # The reader answers what it read: that one response was in flight.
                assert (await reader).json()["full_name"] == "Old"
                # But it did not leave the old row behind for everyone after.
                after = await client.get(f"{USERS}/{user_id}", headers=headers)
                assert after.json()["full_name"] == "New"
    finally:
        await delete_all_users(database)
