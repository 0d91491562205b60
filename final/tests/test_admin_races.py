"""Two admins acting on each other at once: the last active admin survives every interleaving."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import PASSWORD, bearer, open_client
from tests.lock_holder import delete_users, execute_committed, lock_holder

from app.session_markers import REVOKED, session_key

USERS = "/api/v1/users"


@pytest.fixture
async def admin_emails(database: str) -> AsyncIterator[tuple[str, str]]:
    """Two fresh emails for admins the test signs up (committed); deleted after the test."""
    emails = tuple(f"admin-race-{uuid.uuid4().hex[:12]}@example.com" for _ in range(2))
    yield emails[0], emails[1]
    await delete_users(database, *emails)


async def sign_up_admin(client: httpx.AsyncClient, database: str, email: str) -> tuple[str, str]:
    """Sign up, become an admin, log in; return the user's id and an access token."""
    signup = await client.post(USERS, json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    await execute_committed(database, "UPDATE users SET is_admin = true WHERE email = :e", e=email)
    login = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return signup.json()["id"], login.json()["access_token"]


async def active_admin_emails(database: str) -> set[str]:
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT email FROM users WHERE is_admin AND is_active")
            )
            return {email for (email,) in rows}
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("method", "body", "done"),
    [
        pytest.param("DELETE", None, 204, id="deleting"),
        pytest.param("PATCH", {"is_admin": False}, 200, id="demoting"),
        pytest.param("PATCH", {"is_active": False}, 200, id="deactivating"),
    ],
)
async def test_two_admins_removing_each_other_at_once_leave_one_admin(
    app: FastAPI,
    database: str,
    admin_emails: tuple[str, str],
    method: str,
    body: dict[str, Any] | None,
    done: int,
) -> None:
    async for client in open_client(app):
        (ada_id, ada_token), (bob_id, bob_token) = [
            await sign_up_admin(client, database, email) for email in admin_emails
        ]
        assert await active_admin_emails(database) == set(admin_emails), "Other admins exist."
        async with lock_holder(database) as holder:
            # Both rows held elsewhere: each request passes its admin check, then
            # waits, so that neither decides before the other has been let in.
            await holder.execute(
                "SELECT id FROM users WHERE email = ANY(:emails) FOR UPDATE",
                emails=list(admin_emails),
            )
            requests = [
                asyncio.create_task(
                    client.request(method, f"{USERS}/{target}", json=body, headers=bearer(token))
                )
                for target, token in ((bob_id, ada_token), (ada_id, bob_token))
            ]
            await holder.wait_until("both requests", lambda waiters: len(waiters) == 2, *requests)
        responses = await asyncio.gather(*requests)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == sorted([done, 409]), [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 409)
        assert "last active administrator" in refused.json()["detail"]
        survivor = ada_token if responses[0].status_code == done else bob_token
        listing = await client.get(USERS, headers=bearer(survivor))
        assert listing.status_code == 200, listing.text

    assert len(await active_admin_emails(database)) == 1


async def test_deleting_a_user_forgets_the_session_of_a_login_it_waited_for(
    app: FastAPI, database: str, redis: Redis, admin_emails: tuple[str, str]
) -> None:
    # A login holds the user's row (FOR SHARE) while it inserts its session. A
    # delete that lists the sessions to forget before that commit misses this
    # one, whose marker a request in between could then write: the deleted
    # user's token admitted for SESSION_MARKER_TTL_SECONDS.
    admin_email, user_email = admin_emails
    async for client in open_client(app):
        _, admin_token = await sign_up_admin(client, database, admin_email)
        signup = await client.post(USERS, json={"email": user_email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        async with lock_holder(database) as holder:
            await holder.execute(
                "SELECT id FROM users WHERE email = :email FOR SHARE", email=user_email
            )
            inserted = await holder.connection.execute(
                text(
                    "INSERT INTO auth_sessions (user_id, refresh_token_hash, expires_at)"
                    " VALUES (:user_id, 'racing login', now() + interval '1 hour') RETURNING id"
                ),
                {"user_id": signup.json()["id"]},
            )
            racing_session = inserted.scalar_one()
            deleting = asyncio.create_task(
                client.delete(f"{USERS}/{signup.json()['id']}", headers=bearer(admin_token))
            )
            await holder.wait_until("the delete", lambda waiters: len(waiters) == 1, deleting)
            await holder.commit()
        deleted = await deleting
        assert deleted.status_code == 204, deleted.text
    assert await redis.get(session_key(racing_session)) == REVOKED
