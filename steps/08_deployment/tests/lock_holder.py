"""A second database connection that holds locks, to race requests deterministically."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

# Every backend waiting for a lock, directly or through another waiter, on the
# holder (pg_blocking_pids: whoever holds, or queues ahead for, what it waits for).
_WAITERS = text(
    """
    WITH RECURSIVE waiting(pid, blockers) AS (
        SELECT pid, pg_blocking_pids(pid) FROM pg_locks
        WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))
      UNION
        SELECT lock.pid, pg_blocking_pids(lock.pid) FROM pg_locks AS lock, waiting
        WHERE NOT lock.granted AND waiting.pid = ANY(pg_blocking_pids(lock.pid))
    )
    SELECT pid, blockers FROM waiting
    """
)
# Polls are 10 ms apart; 1000 of them only bound a hang, they time nothing.
_POLLS, _POLL_SECONDS = 1000, 0.01


class LockHolder:
    """An open transaction on a connection of its own: it takes locks and sees who waits."""

    def __init__(self, connection: AsyncConnection, pid: int) -> None:
        self.connection = connection
        self.pid = pid

    async def execute(self, sql: str, **parameters: Any) -> None:
        """Run one statement inside the held transaction (its locks stay until it ends)."""
        await self.connection.execute(text(sql), parameters)

    async def waiters(self) -> dict[int, set[int]]:
        """Each backend waiting on this transaction's locks, with the backends it waits for."""
        rows = await self.connection.execute(_WAITERS)
        return {pid: set(blockers) for pid, blockers in rows}

    async def wait_until(
        self,
        what: str,
        condition: Callable[[dict[int, set[int]]], bool],
        *racers: asyncio.Task[Any],
    ) -> None:
        """Poll the waiters until condition holds; fail at once if a racer finished instead."""
        for _ in range(_POLLS):
            if condition(await self.waiters()):
                return
            finished = [task.result() for task in racers if task.done()]
            if finished:
                _cancel(racers)
                pytest.fail(f"Finished without waiting for {what}: {finished!r}.", pytrace=False)
            await asyncio.sleep(_POLL_SECONDS)
        _cancel(racers)
        pytest.fail(f"Gave up waiting for {what}: {await self.waiters()!r}.", pytrace=False)

    async def commit(self) -> None:
        """End the held transaction by committing it (its locks are released)."""
        await self.connection.commit()


def _cancel(racers: tuple[asyncio.Task[Any], ...]) -> None:
    # A failing test must not leave requests running into the next one.
    for task in racers:
        task.cancel()


@asynccontextmanager
async def lock_holder(database: str) -> AsyncIterator[LockHolder]:
    """Open a transaction on a new connection; roll back whatever it has not committed."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            try:
                yield LockHolder(connection, pid)
            finally:
                await connection.rollback()
    finally:
        await engine.dispose()


async def execute_committed(database: str, sql: str, **parameters: Any) -> None:
    """Run one statement on a connection of its own, and commit it."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(sql), parameters)
    finally:
        await engine.dispose()


async def delete_users(database: str, *emails: str) -> None:
    """Delete committed users by email (their sessions go with them, ON DELETE CASCADE)."""
    await execute_committed(
        database, "DELETE FROM users WHERE email = ANY(:emails)", emails=list(emails)
    )
