"""Alembic migrations: they build the schema the models describe, both ways."""

import asyncio

from alembic import command
from tests.conftest import alembic_config, recreate_database


def test_migrations_upgrade_check_downgrade_and_upgrade_again(database: str) -> None:
    # A database of its own: the shared test database stays migrated for other tests.
    url = database.rsplit("/", 1)[0] + "/" + database.rsplit("/", 1)[1] + "_migrations"
    asyncio.run(recreate_database(url))
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.check(config)  # raises if the models and the migrated schema differ
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)
