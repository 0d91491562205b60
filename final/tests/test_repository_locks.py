"""The row locks UserRepository takes, seen from a second connection: who waits for whom."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool
from tests.lock_holder import LockHolder, delete_users, execute_committed, lock_holder

from app.repository import UserRepository

T = TypeVar("T")

# Polls are 10 ms apart; 1000 of them only bound a hang, they time nothing.
_POLLS, _POLL_SECONDS = 1000, 0.01


@pytest.fixture
async def emails(database: str) -> AsyncIterator[tuple[str, str]]:
    """Two fresh emails for users the test inserts (committed); deleted after the test."""
    made = tuple(f"locks-{uuid.uuid4().hex[:12]}@example.com" for _ in range(2))
    yield made[0], made[1]
    await delete_users(database, *made)


async def in_own_transaction(database: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run work in a transaction on a connection of its own, and commit it."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with AsyncSession(engine) as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


async def queues_behind(holder: LockHolder, task: asyncio.Task[Any]) -> bool:
    """Whether the task waits for one of the holder's locks before it finishes."""
    for _ in range(_POLLS):
        if await holder.waiters():
            return True
        if task.done():
            return False
        await asyncio.sleep(_POLL_SECONDS)
    pytest.fail(f"Neither finished nor waited for the holder's locks: {task!r}.", pytrace=False)


async def test_two_logins_of_one_user_hold_its_row_lock_at_the_same_time(
    database: str, emails: tuple[str, str]
) -> None:
    user_id = uuid.uuid4()
    await execute_committed(
        database,
        "INSERT INTO users (id, email, password_hash) VALUES (:id, :email, 'hash')",
        id=user_id,
        email=emails[0],
    )
    async with (
        lock_holder(database) as first_login,
        AsyncSession(bind=first_login.connection) as first_logins_session,
    ):
        # The first login's lock, taken as the login route takes it, held open.
        first = UserRepository(first_logins_session)
        assert await first.lock_if_password_unchanged(user_id, "hash")
        second_login = asyncio.create_task(
            in_own_transaction(
                database, lambda s: UserRepository(s).lock_if_password_unchanged(user_id, "hash")
            )
        )
        queued = await queues_behind(first_login, second_login)
    assert await second_login is True
    # FOR SHARE: a login only stops the password from changing under it. Logins
    # on two devices at once must not queue one behind the other's commit.
    assert not queued, "The second login waited for the first one's lock on the user's row."


async def test_the_active_admins_rows_are_locked_in_id_order(
    database: str, emails: tuple[str, str]
) -> None:
    low, high = sorted(uuid.uuid4() for _ in range(2))
    # Stored high first: a scan in the table's own order meets (and locks) it first.
    await execute_committed(
        database,
        "INSERT INTO users (id, email, password_hash, is_admin)"
        " VALUES (:high, :high_email, 'hash', true), (:low, :low_email, 'hash', true)",
        high=high,
        low=low,
        high_email=emails[0],
        low_email=emails[1],
    )
    async with lock_holder(database) as holder:
        stored = await holder.connection.execute(
            text("SELECT id FROM users WHERE id IN (:low, :high) ORDER BY ctid"),
            {"low": low, "high": high},
        )
        assert list(stored.scalars()) == [high, low], "The rows are not stored against id order."
        await holder.execute("SELECT id FROM users WHERE id = :id FOR UPDATE", id=high)
        locking = asyncio.create_task(
            in_own_transaction(database, lambda s: UserRepository(s).lock_active_admin_ids())
        )
        await holder.wait_until("the admins' lock", lambda waiters: len(waiters) == 1, locking)
        probe = await holder.connection.execute(
            text("SELECT id FROM users WHERE id = :id FOR UPDATE SKIP LOCKED"), {"id": low}
        )
        low_was_free = probe.first() is not None
    assert {low, high} <= set(await locking)
    # Every transaction takes the admins' rows in one order, so none can hold
    # high while waiting for low as another holds low and waits for high (a
    # deadlock, which PostgreSQL breaks by failing one of them): waiting here
    # for high, it already holds low.
    assert not low_was_free, "The admins' rows were not locked in id order."
