"""Alembic migrations: they build the schema the models describe, both ways, from the CLI too."""

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from tests.conftest import PROJECT_DIR, alembic_config, recreate_database

from app.config import Settings

pytestmark = pytest.mark.task("migrations")


def database_of_its_own(url: str, suffix: str) -> str:
    """A URL for a scratch database beside the test database (which stays migrated)."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{suffix}").render_as_string(hide_password=False)


async def tables_and_revision(url: str) -> tuple[set[str], str | None]:
    """The tables in the public schema, and the revision Alembic recorded."""
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        tables = {
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        revision = None
        if "alembic_version" in tables:
            revision = await connection.fetchval("SELECT version_num FROM alembic_version")
        return tables, revision
    finally:
        await connection.close()


def head_revision(url: str) -> str | None:
    """The newest revision in migrations/versions."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_the_first_revision_is_0001(database: str) -> None:
    assert ScriptDirectory.from_config(alembic_config(database)).get_base() == "0001"


def test_migrations_upgrade_check_downgrade_and_upgrade_again(database: str) -> None:
    url = database_of_its_own(database, "migrations")
    asyncio.run(recreate_database(url))
    config = alembic_config(url)

    command.upgrade(config, "head")
    command.check(config)  # raises if the models and the migrated schema differ
    command.downgrade(config, "base")
    assert asyncio.run(tables_and_revision(url)) == ({"alembic_version"}, None)
    command.upgrade(config, "head")
    command.check(config)

    assert asyncio.run(tables_and_revision(url)) == (
        {"alembic_version", "users", "auth_sessions", "spent_refresh_tokens"},
        head_revision(url),
    )


def run_alembic(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the alembic command in the project, with only DATABASE_URL among the settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_alembic_command_migrates_the_database_in_database_url(database: str) -> None:
    url = database_of_its_own(database, "cli")
    asyncio.run(recreate_database(url))

    upgraded = run_alembic("upgrade", "head", database_url=url)
    checked = run_alembic("check", database_url=url)

    assert upgraded.returncode == 0, upgraded.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert asyncio.run(tables_and_revision(url)) == (
        {"alembic_version", "users", "auth_sessions", "spent_refresh_tokens"},
        head_revision(url),
    )


@pytest.mark.task("sessions-table")
def test_the_sessions_revision_follows_the_users_revision(database: str) -> None:
    # Shipped revisions are history: this step adds 0002 on top of 0001, unchanged.
    script = ScriptDirectory.from_config(alembic_config(database))
    assert [revision.revision for revision in script.walk_revisions()] == ["0002", "0001"]
