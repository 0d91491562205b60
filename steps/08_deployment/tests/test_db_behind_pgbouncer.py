"""DB_BEHIND_PGBOUNCER reaches the engine: no statement kept between transactions, unique names.

A real PgBouncer in transaction mode fails without the setting (the repository's
resilience suite shows it); these tests show, on PostgreSQL itself, what the engine does.
"""

import re

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.conftest import make_settings

from app.db import create_engine

pytestmark = pytest.mark.task("pgbouncer")

# The statement each test runs twice, and finds again in pg_prepared_statements.
PROBE = "SELECT 41 + 1 AS answer"
READ_NAMES = "SELECT name FROM pg_prepared_statements WHERE statement = :statement"
# How PostgreSQL stores READ_NAMES itself: the dialect sends the parameter as $1.
READ_NAMES_AS_PREPARED = READ_NAMES.replace(":statement", "$1")
UNIQUE_NAME = re.compile(
    r"^__asyncpg_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}__$"
)


async def statements_named(connection: AsyncConnection, statement: str) -> list[str]:
    """Names of the prepared statements of this text that the server connection holds."""
    result = await connection.execute(text(READ_NAMES), {"statement": statement})
    return list(result.scalars())


async def run_probe_twice(*, behind_pgbouncer: bool) -> tuple[list[str], list[str], list[str]]:
    """Run PROBE in two transactions on one connection of the engine.

    Returns the PROBE statements the server connection holds after each run,
    and the name of the statement that reads them, as it runs.
    """
    settings = make_settings(db_behind_pgbouncer=behind_pgbouncer, db_pool_size=1)
    engine = create_engine(settings)
    held = []
    try:
        async with engine.connect() as connection:
            for _ in range(2):
                assert (await connection.execute(text(PROBE))).scalar_one() == 42
                held.append(await statements_named(connection, PROBE))
                await connection.commit()
            reading = await statements_named(connection, READ_NAMES_AS_PREPARED)
    finally:
        await engine.dispose()
    return held[0], held[1], reading


async def test_by_default_a_prepared_statement_is_kept_and_reused_across_transactions(
    database: str,
) -> None:
    first, second, _ = await run_probe_twice(behind_pgbouncer=False)
    # Kept on the server connection: the cache that transaction pooling breaks.
    assert len(first) == 1, first
    assert second == first, (first, second)


async def test_behind_pgbouncer_no_prepared_statement_outlives_its_use(database: str) -> None:
    first, second, _ = await run_probe_twice(behind_pgbouncer=True)
    assert first == [], first
    assert second == [], second


async def test_behind_pgbouncer_every_prepared_statement_has_a_unique_name(
    database: str,
) -> None:
    _, _, reading = await run_probe_twice(behind_pgbouncer=True)
    # asyncpg's own names (__asyncpg_stmt_1__, ...) count per client connection:
    # two clients sharing one server connection through PgBouncer would collide.
    assert len(reading) == 1, reading
    assert UNIQUE_NAME.match(reading[0]), reading
