"""Racing sign-ups for one address: the unique index, not the code, decides who wins."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import delete_all_users, make_settings, open_client, wait_for_lock_waits

from app.main import create_app

pytestmark = pytest.mark.task("users")

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
