"""Exercise: the database itself refuses an email with capitals, from a new revision."""

import asyncio

import httpx
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import alembic_config, recreate_database

CONSTRAINT = "ck_users_email_lower_case"  # what the naming convention makes of "email_lower_case"


async def has_constraint(url: str) -> bool:
    """Whether the database at url has the check constraint."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT count(*) FROM pg_constraint WHERE conname = :name"),
                {"name": CONSTRAINT},
            )
            return bool(found)
    finally:
        await engine.dispose()


async def test_an_email_with_capitals_is_refused_by_the_database(
    connection: AsyncConnection,
) -> None:
    with pytest.raises(IntegrityError) as caught:
        async with connection.begin_nested():
            await connection.execute(
                text("INSERT INTO users (email, password_hash) VALUES ('Ada@Example.com', 'x')")
            )

    assert CONSTRAINT in str(caught.value)


async def test_sign_up_with_capitals_still_works(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", json={"email": "Ada@Example.com", "password": "long enough"}
    )

    assert response.status_code == 201, response.text


def test_the_constraint_comes_from_a_new_revision_that_can_be_undone(database: str) -> None:
    url = database + "_exercise"
    asyncio.run(recreate_database(url))
    config = alembic_config(url)

    # Revision 0001 has shipped: it must stay as it is, so the constraint is not in it.
    command.upgrade(config, "0001")
    assert not asyncio.run(has_constraint(url))
    command.upgrade(config, "head")
    assert asyncio.run(has_constraint(url))
    command.downgrade(config, "0001")
    assert not asyncio.run(has_constraint(url))
