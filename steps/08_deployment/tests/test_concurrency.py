"""Races run for real: sign-ups, one refresh token twice, a cache stampede, concurrent updates.

Each race is made certain rather than hoped for: a lock held by the test on a
connection of its own stops every racer at the same point, and the test lets
them go only once PostgreSQL shows them all waiting. These tests need the
app's real pool (one connection per request) and committed rows, so they run
outside the rolled-back test transaction and delete what they wrote.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import (
    PASSWORD,
    assert_problem,
    bearer,
    delete_all_users,
    log_in,
    make_settings,
    open_client,
    sign_up,
    sign_up_and_log_in,
    wait_for_lock_waits,
    with_lifespan_state,
)
from tests.lock_holder import delete_users, execute_committed, lock_holder

from app.main import create_app

pytestmark = pytest.mark.task("users")

USERS = "/api/v1/users"
ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"
SIGN_UPS = 20
SPELLINGS = ["race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.COM"]


async def test_twenty_concurrent_sign_ups_for_one_email_create_exactly_one_user(
    database: str, observer: AsyncConnection
) -> None:
    # A pool for every request and a generous statement timeout: the sign-ups
    # wait at the lock below, and none may give up while they do.
    app = create_app(make_settings(db_pool_size=SIGN_UPS, db_statement_timeout_ms=60_000))
    locker = create_async_engine(database, poolclass=NullPool)
    try:
        async for client in open_client(app):
            async with locker.connect() as lock:
                # SHARE mode lets reads through and holds every INSERT: all twenty
                # requests get past any "is this email taken?" check before one of
                # them may insert, so the race is certain, not hoped for.
                await lock.execute(text("LOCK TABLE users IN SHARE MODE"))
                sign_ups = [
                    asyncio.create_task(
                        client.post(
                            "/api/v1/users",
                            json={"email": SPELLINGS[n % 4], "password": "long enough"},
                        )
                    )
                    for n in range(SIGN_UPS)
                ]
                await wait_for_lock_waits(observer, SIGN_UPS)
                await lock.rollback()  # releases the lock: the inserts race
            responses = await asyncio.gather(*sign_ups)

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201] + [409] * (SIGN_UPS - 1), [r.text for r in responses]
        stored = await observer.scalar(
            text("SELECT count(*) FROM users WHERE lower(email) = 'race@example.com'")
        )
        assert stored == 1
    finally:
        await locker.dispose()
        await delete_all_users(database)


# --- one refresh token, sent twice at once ------------------------------------------


async def test_one_refresh_token_sent_twice_at_once_rotates_once_and_ends_the_session(
    app: FastAPI, database: str, committed_email: str
) -> None:
    async for client in open_client(app):
        await sign_up_and_log_in(client, committed_email)
        token = (await log_in(client, committed_email))["refresh_token"]
        session_id = token.split(".")[0]
        async with lock_holder(database) as holder:
            # Holding the session's row stops both refreshes at their UPDATE:
            # neither has decided anything when it is released.
            await holder.execute(
                "SELECT 1 FROM auth_sessions WHERE id = :id FOR UPDATE", id=session_id
            )
            racers = [
                asyncio.create_task(client.post(REFRESH, json={"refresh_token": token}))
                for _ in range(2)
            ]
            await holder.wait_until("both refreshes", lambda waiters: len(waiters) == 2, *racers)
            await holder.commit()
        responses = await asyncio.gather(*racers)

        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, [r.text for r in responses]
        (loser,) = (r for r in responses if r is not winners[0])
        assert_problem(loser, 401)
        # The loser presented a token already spent: a replay, which the contract
        # answers by ending the whole session, the winner's new pair included.
        pair = winners[0].json()
        replayed = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert_problem(replayed, 401)
        assert_problem(await client.get(ME, headers=bearer(pair["access_token"])), 401)


# --- a cache stampede -----------------------------------------------------------------

READS = 50


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """Run the app's lifespan; yield a client and the engine the app made for itself."""
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=with_lifespan_state(app, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, state["engine"]


async def test_fifty_concurrent_reads_of_a_cold_user_on_the_real_pool_query_it_once(
    database: str, committed_email: str
) -> None:
    app = create_app(make_settings(db_pool_size=READS))
    async with serving(app) as (client, engine):
        user_id, headers = await sign_up_and_log_in(client, committed_email)
        # One authenticated request writes the session's marker to Redis: the
        # fifty token checks then send no SQL, and only the user reads are left.
        assert (await client.get("/api/v1/auth/sessions", headers=headers)).status_code == 200
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if "FROM users" in statement and user_id in repr(parameters):
                statements.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            async with lock_holder(database) as holder:
                # Every read of users waits behind this lock: the first one's
                # query is held while the other forty-nine arrive at a cold cache.
                await holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                reads = [
                    asyncio.create_task(client.get(f"{USERS}/{user_id}", headers=headers))
                    for _ in range(READS)
                ]
                await holder.wait_until("the first read", lambda waiters: len(waiters) >= 1, *reads)
                # Each poll is a round trip that lets the other reads run: a second
                # query would show as a second waiter.
                for _ in range(20):
                    assert len(await holder.waiters()) == 1
                await holder.commit()
            responses = await asyncio.gather(*reads)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)

    assert [r.status_code for r in responses] == [200] * READS, responses[0].text
    assert len({r.content for r in responses}) == 1
    assert len(statements) == 1, statements


# --- concurrent updates of one user -------------------------------------------------

PATCHES = 8


@pytest.fixture
async def two_emails(database: str) -> AsyncIterator[tuple[str, str]]:
    """Two fresh emails for users the test signs up (committed); deleted after the test."""
    emails = tuple(f"update-race-{uuid.uuid4().hex[:12]}@example.com" for _ in range(2))
    yield emails[0], emails[1]
    await delete_users(database, *emails)


async def committed_row(database: str, user_id: str) -> dict[str, Any]:
    """The user's full_name and is_active as committed, read on a connection of its own."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = await connection.execute(
                text("SELECT full_name, is_active FROM users WHERE id = :id"), {"id": user_id}
            )
            return dict(row.mappings().one())
    finally:
        await engine.dispose()


async def test_concurrent_admin_patches_of_one_user_leave_one_write_whole(
    database: str, two_emails: tuple[str, str]
) -> None:
    admin_email, target_email = two_emails
    app = create_app(make_settings(db_pool_size=PATCHES, db_statement_timeout_ms=60_000))
    writes = [{"full_name": f"Writer {n}", "is_active": n % 2 == 0} for n in range(PATCHES)]
    async for client in open_client(app):
        await sign_up(client, admin_email)
        await execute_committed(
            database, "UPDATE users SET is_admin = true WHERE email = :e", e=admin_email
        )
        admin = bearer((await log_in(client, admin_email))["access_token"])
        target_id = (await sign_up(client, target_email))["id"]
        async with lock_holder(database) as holder:
            # All eight PATCHes wait for the target's row: none has written when it is let go.
            await holder.execute(
                "SELECT id FROM users WHERE email = :email FOR UPDATE", email=target_email
            )
            patches = [
                asyncio.create_task(client.patch(f"{USERS}/{target_id}", json=w, headers=admin))
                for w in writes
            ]
            await holder.wait_until(
                "every PATCH", lambda waiters: len(waiters) == PATCHES, *patches
            )
            await holder.commit()
        responses = await asyncio.gather(*patches)
        read_back = await client.get(f"{USERS}/{target_id}", headers=admin)

    assert [r.status_code for r in responses] == [200] * PATCHES, [r.text for r in responses]
    # Each answer is its own write, whole: no response shows another writer's half.
    for write, response in zip(writes, responses, strict=True):
        body = response.json()
        assert {"full_name": body["full_name"], "is_active": body["is_active"]} == write
    stored = await committed_row(database, target_id)
    assert stored in writes, stored
    # And the read after them all is that row, not a stale cached one.
    assert read_back.status_code == 200, read_back.text
    assert {k: read_back.json()[k] for k in ("full_name", "is_active")} == stored


async def test_two_concurrent_password_changes_one_wins_and_the_other_gets_403(
    app: FastAPI, database: str, committed_email: str
) -> None:
    async for client in open_client(app):
        await sign_up(client, committed_email)
        phone, laptop = [
            bearer((await log_in(client, committed_email))["access_token"]) for _ in range(2)
        ]
        choices = {"phone": "the phone's choice", "laptop": "the laptop's choice"}
        async with lock_holder(database) as holder:
            # Both changes check the current password against the same hash, then
            # wait for the row: the race the stored-hash condition must decide.
            await holder.execute(
                "SELECT id FROM users WHERE email = :email FOR UPDATE", email=committed_email
            )
            changes = {
                device: asyncio.create_task(
                    client.patch(
                        ME,
                        headers=headers,
                        json={"password": choices[device], "current_password": PASSWORD},
                    )
                )
                for device, headers in (("phone", phone), ("laptop", laptop))
            }
            await holder.wait_until(
                "both changes", lambda waiters: len(waiters) == 2, *changes.values()
            )
            await holder.commit()
        answers = {device: await change for device, change in changes.items()}

        winners = [device for device, r in answers.items() if r.status_code == 200]
        assert len(winners) == 1, {device: r.text for device, r in answers.items()}
        (winner,) = winners
        (loser,) = set(answers) - {winner}
        body = assert_problem(answers[loser], 403)
        assert body["detail"] == "The current password is not correct."
        # The winner's password is the one now; the loser's never was.
        won = await client.post(
            "/api/v1/auth/token", data={"username": committed_email, "password": choices[winner]}
        )
        lost = await client.post(
            "/api/v1/auth/token", data={"username": committed_email, "password": choices[loser]}
        )
        assert won.status_code == 200, won.text
        assert_problem(lost, 401)
        # The change that answered 200 kept its own session and ended the other one.
        devices = {"phone": phone, "laptop": laptop}
        assert (await client.get(ME, headers=devices[winner])).status_code == 200
        assert_problem(await client.get(ME, headers=devices[loser]), 401)
