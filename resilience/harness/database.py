"""The suite's database: created and migrated once, then read directly to check what committed."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable

import asyncpg

from harness.service import FINAL_DIR

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/workshop_resilience"
# final/app/db.py sets this application_name on every pooled connection.
APP_CONNECTION_NAME = "workshop-final"


def database_url() -> str:
    """DATABASE_URL, or the suite's default database on the local server."""
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def asyncpg_dsn(url: str) -> str:
    """The same URL in the form asyncpg accepts (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _maintenance_dsn(url: str) -> tuple[str, str]:
    dsn = asyncpg_dsn(url)
    base, _, name = dsn.rpartition("/")
    return f"{base}/postgres", name.split("?", 1)[0]


async def recreate_database(url: str) -> None:
    """Drop and create the database through the `postgres` maintenance database.

    A fresh database per run, as final/'s own tests make: a schema migrated by
    an earlier run, under a revision since edited, must not be what this run tests.
    """
    maintenance, name = _maintenance_dsn(url)
    try:
        connection = await asyncpg.connect(maintenance, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        raise RuntimeError(
            f"PostgreSQL is not answering for {name!r} ({type(error).__name__}): start it, "
            "or run the suite through `nox -s resilience`, which starts one."
        ) from error
    try:
        # Identifiers cannot be parameters; the name comes from our own settings.
        # WITH (FORCE): a previous run's lingering connections must not block the drop.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def migrate(url: str) -> None:
    """Run final/'s migrations (`alembic upgrade head`) against the suite's database."""
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=FINAL_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{result.stdout}\n{result.stderr}")


async def committed_emails(url: str, emails: Iterable[str]) -> set[str]:
    """Which of these emails exist in the users table, read straight from PostgreSQL."""
    wanted = [email.lower() for email in emails]
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT email FROM users WHERE email = ANY($1::text[])", wanted
        )
    finally:
        await connection.close()
    return {row["email"] for row in rows}


async def wait_for_app_connections(url: str, *, timeout_seconds: float = 30.0) -> None:
    """Return once final/ holds a connection to the suite's database; fail after the timeout.

    A fault test that cuts connections must first know there are some: how long
    the first requests take to reach PostgreSQL (each sign-up hashes a password
    first) depends on how busy the machine is, so a fixed sleep is a race.
    """
    _, name = _maintenance_dsn(url)
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while asyncio.get_running_loop().time() < deadline:
            held = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = $2",
                APP_CONNECTION_NAME,
                name,
            )
            if held:
                return
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    raise AssertionError(f"final/ opened no connection to {name} within {timeout_seconds} s.")


async def terminate_app_connections(url: str) -> int:
    """pg_terminate_backend every connection final/ holds to the suite's database."""
    _, name = _maintenance_dsn(url)
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = $2 AND pid <> pg_backend_pid()",
            APP_CONNECTION_NAME,
            name,
        )
    finally:
        await connection.close()
    return sum(1 for row in rows if row["killed"])
