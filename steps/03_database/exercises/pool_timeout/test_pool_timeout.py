"""Exercise: a request that finds no free pooled connection in time gets 503, not 500."""

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import delete_all_users, make_settings, open_client, wait_for_lock_waits

from app.main import create_app


async def test_a_request_that_waits_out_the_pool_timeout_gets_503_with_retry_after(
    database: str, observer: AsyncConnection
) -> None:
    # One pooled connection, and a short wait for it.
    app = create_app(
        make_settings(db_pool_size=1, db_pool_timeout_seconds=0.2, db_statement_timeout_ms=60_000)
    )
    locker = create_async_engine(database, poolclass=NullPool)
    try:
        async for client in open_client(app):
            async with locker.connect() as lock:
                # The sign-up's INSERT waits at this lock, holding the only connection.
                await lock.execute(text("LOCK TABLE users IN SHARE MODE"))
                body = {"email": "ada@example.com", "password": "long enough"}
                sign_up = asyncio.create_task(client.post("/api/v1/users", json=body))
                await wait_for_lock_waits(observer, 1)
                read = await client.get(f"/api/v1/users/{uuid.uuid4()}")
                await lock.rollback()
            signed_up = await sign_up
    finally:
        await locker.dispose()
        await delete_all_users(database)

    assert read.status_code == 503, read.text
    assert int(read.headers["retry-after"]) >= 1
    assert signed_up.status_code == 201, signed_up.text
