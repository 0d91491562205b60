"""Which database errors are an outage (503) and which are bugs (500), on a real server."""

import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import assert_problem, make_settings, open_client
from tests.lock_holder import delete_users, lock_holder

from app.config import Settings
from app.db import create_engine
from app.deps import SessionDep
from app.errors import is_database_unavailable
from app.logging import JsonFormatter
from app.main import create_app


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


def test_an_error_from_outside_the_database_is_a_bug_not_an_outage() -> None:
    # The create-admin CLI asks about every exception it catches: a bug must keep its traceback.
    assert not is_database_unavailable(RuntimeError("a bug in the service"))


async def test_a_statement_timeout_counts_as_the_database_unavailable(
    engine: AsyncEngine,
) -> None:
    # asyncpg's dialect raises a plain DBAPIError (SQLSTATE 57014), not an OperationalError.
    async with engine.connect() as connection:
        await connection.execute(text("SET statement_timeout = 10"))
        with pytest.raises(DBAPIError) as caught:
            await connection.execute(text("SELECT pg_sleep(60)"))
    assert is_database_unavailable(caught.value), repr(caught.value)


async def test_a_lock_timeout_counts_as_the_database_unavailable(
    engine: AsyncEngine, database: str
) -> None:
    async with lock_holder(database) as holder, engine.connect() as connection:
        await holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        await connection.execute(text("SET lock_timeout = 10"))
        with pytest.raises(DBAPIError) as caught:  # SQLSTATE 55P03
            await connection.execute(text("SELECT count(*) FROM users"))
    assert is_database_unavailable(caught.value), repr(caught.value)


async def test_a_failed_statement_never_carries_its_parameters(settings: Settings) -> None:
    # What a 500's traceback in the log shows is str(error): with the engine's
    # defaults, that ends in "[parameters: (...)]", an email or a password hash.
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as caught:
                await connection.execute(
                    text("SELECT CAST(:value AS text), 1 / 0"), {"value": "secret@example.com"}
                )
    finally:
        await engine.dispose()
    assert "secret@example.com" not in str(caught.value)


async def test_a_sign_up_past_the_statement_timeout_gets_503_and_logs_no_parameter(
    database: str, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # A statement PostgreSQL cancels is an outage (503, retry later), not a
    # 500 whose traceback in the log shows the row being inserted.
    app = create_app(make_settings(db_statement_timeout_ms=300))
    email = "slow@example.com"
    caplog.set_level(logging.DEBUG)
    try:
        async with lock_holder(database) as holder:
            # The sign-up's INSERT waits for this lock until PostgreSQL cancels it.
            await holder.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            async for client in open_client(app):
                r = await client.post(
                    "/api/v1/users", json={"email": email, "password": "long enough pw"}
                )
    finally:
        await delete_users(database, email)
    body = assert_problem(r, 503)
    assert "database" in body["detail"], body
    assert int(r.headers["retry-after"]) >= 1, r.headers
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert lines, "the 503 left no log line"
    assert not [line for line in lines if email in line or "$argon2" in line], lines


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


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


async def test_a_request_with_the_database_refusing_connections_answers_503_and_logs_its_type(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # A refused connection is an OSError, not a DBAPIError: an outage all the same.
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere"
    app = create_app(make_settings(database_url=url))
    caplog.set_level(logging.WARNING, logger="app.errors")
    async for client in open_client(app):
        r = await client.post(
            "/api/v1/users", json={"email": "down@example.com", "password": "long enough pw"}
        )
    body = assert_problem(r, 503)
    assert body["detail"] == "The database is unavailable; try again shortly."
    assert r.headers["retry-after"] == "1"
    # The line as production writes it: a fixed message an alert can match, and the
    # exception's type to diagnose by (its text may hold connection details).
    [line] = [
        json.loads(JsonFormatter().format(record))
        for record in caplog.records
        if record.name == "app.errors"
    ]
    assert (line["level"], line["message"], line.get("error")) == (
        "WARNING",
        "Database unavailable.",
        "ConnectionRefusedError",
    ), line
