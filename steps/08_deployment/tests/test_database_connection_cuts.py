"""PostgreSQL ending a request's connection mid-request: 503, nothing half-written, then service.

The cut comes while a statement of the route waits on a row lock, and while
its COMMIT itself waits. Both waits are made deterministic by what the test
holds (a row lock, an advisory lock), so the backend is cut at a known point,
found in pg_stat_activity by what it is waiting on.

The COMMIT is held by a deferred constraint trigger: PostgreSQL runs deferred
triggers inside COMMIT, before the commit record is written. So a cut there
always loses the write, and the answer must be a 503. A cut after the commit
record is written but before the driver reads PostgreSQL's reply (the write
kept, the reply lost) cannot be held at a known point from SQL: the service
answers 503 there too, for a write that was kept (never a 2xx for one that was
not), and a client retrying the same PATCH is safe.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import assert_problem, open_client, sign_up_and_log_in
from tests.lock_holder import execute_committed, lock_holder

# The learner check of step 07: the tests its task "catch-connection-cuts" asks for.
pytestmark = pytest.mark.task("catch-connection-cuts")
ME = "/api/v1/users/me"
UNAVAILABLE = "The database is unavailable; try again shortly."
# The advisory lock the deferred trigger waits for; any number no other test takes.
COMMIT_GATE = 7_000_417
# Only an update to this name fires the trigger: no other write of the suite waits on it.
GATED_NAME = "Held at commit"


@pytest.fixture
async def commit_gate(database: str) -> AsyncIterator[None]:
    """A deferred trigger on users that makes a COMMIT wait for the COMMIT_GATE advisory lock."""
    await execute_committed(
        database,
        f"""
        CREATE FUNCTION test_wait_for_commit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock({COMMIT_GATE});
            RETURN NULL;
        END $$
        """,
    )
    await execute_committed(
        database,
        f"""
        CREATE CONSTRAINT TRIGGER test_commit_gate AFTER UPDATE ON users
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.full_name = '{GATED_NAME}')
        EXECUTE FUNCTION test_wait_for_commit_gate()
        """,
    )
    try:
        yield
    finally:
        await execute_committed(database, "DROP TRIGGER test_commit_gate ON users")
        await execute_committed(database, "DROP FUNCTION test_wait_for_commit_gate()")


async def committed_full_name(database: str, user_id: str) -> str | None:
    """The user's full_name as committed, read on a connection of its own."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = await connection.execute(
                text("SELECT full_name FROM users WHERE id = :id"), {"id": user_id}
            )
            full_name: str | None = row.scalar_one()
            return full_name
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Cut:
    """Where a request is cut: what the holder holds, and what the request then waits in."""

    hold: str  # run by the holder; :email is the caller's
    wait_event: str  # the wait in pg_stat_activity (its wait_event_type is 'Lock')
    statement: str  # how the waiting statement begins
    full_name: str  # the name the PATCH tries to write


CUTS = [
    pytest.param(
        # A row lock is waited for as the transaction holding it: "transactionid".
        Cut(
            "SELECT id FROM users WHERE email = :email FOR UPDATE",
            "transactionid",
            "UPDATE",
            "Never written",
        ),
        id="waiting-for-a-row-lock",
    ),
    pytest.param(
        # The UPDATE goes through; the deferred trigger then holds the COMMIT.
        Cut(f"SELECT pg_advisory_xact_lock({COMMIT_GATE})", "advisory", "COMMIT", GATED_NAME),
        id="in-its-commit",
    ),
]


async def patch_name_cut_there(
    client: httpx.AsyncClient, database: str, email: str, headers: dict[str, str], cut: Cut
) -> httpx.Response:
    """PATCH the caller's name while a holder holds what it waits for; terminate it there."""
    async with lock_holder(database) as holder:
        await holder.execute(cut.hold, email=email)
        patching = asyncio.create_task(
            client.patch(ME, json={"full_name": cut.full_name}, headers=headers)
        )
        await holder.wait_until("the request", lambda waiters: len(waiters) == 1, patching)
        # The app's backends carry its application_name (app/db.py): the one
        # waiting on the holder is the request's.
        rows = await holder.connection.execute(
            text(
                "SELECT pid, query FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'workshop-final'"
                " AND wait_event_type = 'Lock' AND wait_event = :wait_event"
            ),
            {"wait_event": cut.wait_event},
        )
        waiting = rows.all()
        assert [pid for pid, _ in waiting] == list(await holder.waiters()), waiting
        ((pid, statement),) = waiting
        assert statement.lstrip().upper().startswith(cut.statement), statement
        await holder.execute("SELECT pg_terminate_backend(:pid)", pid=pid)
        return await patching


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.usefixtures("commit_gate")
async def test_a_request_cut_mid_request_answers_503_writes_nothing_and_the_next_is_served(
    app: FastAPI, database: str, committed_email: str, cut: Cut
) -> None:
    async for client in open_client(app):
        user_id, headers = await sign_up_and_log_in(client, committed_email)
        answer = await patch_name_cut_there(client, database, committed_email, headers, cut)
        # Never a 2xx for a write that did not commit: each cut comes before the commit record.
        body = assert_problem(answer, 503)
        assert body["detail"] == UNAVAILABLE
        assert answer.headers["retry-after"] == "1"
        assert await committed_full_name(database, user_id) is None

        # The pool dropped the dead connection: the next request gets a live one.
        retried = await client.patch(ME, json={"full_name": "Written"}, headers=headers)
        assert retried.status_code == 200, retried.text
        assert retried.json()["full_name"] == "Written"
    assert await committed_full_name(database, user_id) == "Written"
