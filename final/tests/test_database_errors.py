"""Which database errors are an outage (503) and which are bugs (500), on a real server."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import assert_problem, open_client

from app.deps import SessionDep
from app.errors import is_database_unavailable


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def test_a_connection_cut_before_its_commit_counts_as_the_database_unavailable(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as victim, engine.connect() as killer:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as caught:
            await victim.commit()
    assert is_database_unavailable(caught.value), repr(caught.value)


async def test_a_broken_statement_is_a_bug_not_an_outage(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        with pytest.raises(DBAPIError) as caught:
            await connection.execute(text("SELECT * FROM no_such_table"))
    assert not is_database_unavailable(caught.value)


async def test_a_route_whose_connection_is_cut_before_its_commit_answers_503(
    app: FastAPI, engine: AsyncEngine
) -> None:
    async with engine.connect() as killer:

        @app.post("/test/commit-after-cut")
        async def commit_after_cut(session: SessionDep) -> None:
            """Start a transaction, have PostgreSQL end its connection, then commit."""
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # At once, as in the test above: the COMMIT meets the closing socket and
            # fails as a plain DBAPIError, not one of the "unavailable" subclasses.
            await session.commit()

        # Sessions on their own connections, not the test transaction: it is that
        # connection that dies.
        async for client in open_client(app, {"sessionmaker": async_sessionmaker(engine)}):
            r = await client.post("/test/commit-after-cut")
    body = assert_problem(r, 503)
    assert body["detail"] == "The database is unavailable; try again shortly."
