"""Ending a session on one replica refuses its token on the next request to another."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import PASSWORD, bearer, delete_all_users, log_in, open_client, sign_up

from app.config import Settings
from app.main import create_app

pytestmark = pytest.mark.task("sessions")

ME = "/api/v1/users/me"


@asynccontextmanager
async def two_replicas(
    settings: Settings, database: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two apps on their own pools, one PostgreSQL and one Redis: two replicas of the service."""
    try:
        async for replica_a in open_client(create_app(settings)):
            async for replica_b in open_client(create_app(settings)):
                yield replica_a, replica_b
    finally:
        await delete_all_users(database)


async def promote_committed(database: str, user_id: str) -> None:
    """Make a user an admin, committed (the replicas read through their own connections)."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE users SET is_admin = true WHERE id = :id"), {"id": user_id}
            )
    finally:
        await engine.dispose()


async def accepted_by(client: httpx.AsyncClient, pair: dict[str, Any]) -> bool:
    """Whether this replica lets the pair's access token read /users/me."""
    response = await client.get(ME, headers=bearer(pair["access_token"]))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def session_id(pair: dict[str, Any]) -> str:
    # The session id is no secret: every access token carries it.
    return str(jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"])


async def test_logout_on_one_replica_refuses_the_token_on_the_other(
    settings: Settings, database: str
) -> None:
    async with two_replicas(settings, database) as (replica_a, replica_b):
        await sign_up(replica_a, "ada@example.com")
        pair = await log_in(replica_a, "ada@example.com")
        # Both replicas have checked the session, and marked it live in Redis.
        assert await accepted_by(replica_a, pair)
        assert await accepted_by(replica_b, pair)

        logout = await replica_a.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))

        assert logout.status_code == 204, logout.text
        assert not await accepted_by(replica_b, pair)


async def test_revoking_a_session_on_one_replica_refuses_it_on_the_other(
    settings: Settings, database: str
) -> None:
    async with two_replicas(settings, database) as (replica_a, replica_b):
        await sign_up(replica_a, "ada@example.com")
        here, lost_phone = [await log_in(replica_a, "ada@example.com") for _ in range(2)]
        assert await accepted_by(replica_b, lost_phone)

        revoked = await replica_a.delete(
            f"/api/v1/auth/sessions/{session_id(lost_phone)}", headers=bearer(here["access_token"])
        )

        assert revoked.status_code == 204, revoked.text
        assert not await accepted_by(replica_b, lost_phone)
        assert await accepted_by(replica_b, here)


async def test_deactivation_on_one_replica_refuses_the_users_tokens_on_the_other(
    settings: Settings, database: str
) -> None:
    async with two_replicas(settings, database) as (replica_a, replica_b):
        admin = await sign_up(replica_a, "admin@example.com")
        await promote_committed(database, admin["id"])
        target = await sign_up(replica_a, "ada@example.com")
        pair = await log_in(replica_a, "ada@example.com")
        assert await accepted_by(replica_b, pair)

        admin_pair = await log_in(replica_a, "admin@example.com")
        deactivated = await replica_a.patch(
            f"/api/v1/users/{target['id']}",
            json={"is_active": False},
            headers=bearer(admin_pair["access_token"]),
        )

        assert deactivated.status_code == 200, deactivated.text
        assert not await accepted_by(replica_b, pair)


async def test_a_password_change_on_one_replica_refuses_the_other_sessions_on_the_other(
    settings: Settings, database: str
) -> None:
    async with two_replicas(settings, database) as (replica_a, replica_b):
        await sign_up(replica_a, "ada@example.com")
        current, other = [await log_in(replica_a, "ada@example.com") for _ in range(2)]
        assert await accepted_by(replica_b, other)

        changed = await replica_a.patch(
            ME,
            json={"password": "a brand new passphrase", "current_password": PASSWORD},
            headers=bearer(current["access_token"]),
        )

        assert changed.status_code == 200, changed.text
        assert not await accepted_by(replica_b, other)
        # The device that made the change stays logged in.
        assert await accepted_by(replica_b, current)
