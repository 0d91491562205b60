"""Racing sign-ups: the unique index, not the code, decides who wins."""

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

PASSWORD = "correct horse battery"


async def test_twenty_concurrent_signups_with_one_email_create_exactly_one_user(
    committing_client: httpx.AsyncClient, database: str
) -> None:
    """Runs on the app's real pool (separate connections, committed rows); it deletes its rows."""
    spellings = ["race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.COM"]
    try:
        # One sign-up first: a new app's first write does one-off set-up work
        # (statement compilation, the pool's first connection) that is not
        # what the slow-callback check is there to catch.
        warm_up = await committing_client.post(
            "/api/v1/users", json={"email": "warm-up@example.com", "password": PASSWORD}
        )
        assert warm_up.status_code == 201, warm_up.text
        responses = await asyncio.gather(
            *(
                committing_client.post(
                    "/api/v1/users", json={"email": spellings[n % 4], "password": PASSWORD}
                )
                for n in range(20)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 19, [r.text for r in responses]
    finally:
        engine = create_async_engine(database, poolclass=NullPool)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "DELETE FROM users"
                    " WHERE lower(email) IN ('race@example.com', 'warm-up@example.com')"
                )
            )
        await engine.dispose()
