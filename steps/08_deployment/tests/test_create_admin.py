"""`python -m app create-admin`, run as an operator would: a subprocess."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import PROJECT_DIR
from tests.redis_fixtures import redis_url

pytestmark = pytest.mark.task("create-admin")

EMAIL = "cli-admin@example.com"
PASSWORD = "long enough pw"


def run_cli(database: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python -m app` in the project on this database (and the tests' Redis)."""
    env = {**os.environ, "DATABASE_URL": database, "REDIS_URL": redis_url(), "ENVIRONMENT": "test"}
    env["PYTHONPATH"] = str(PROJECT_DIR)
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env=env,
        timeout=60,
        check=False,
    )


async def _query(database: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(sql), {"email": EMAIL})
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


@pytest.fixture
def cleanup(database: str) -> Iterator[None]:
    """The CLI commits for real: remove its user afterwards."""
    yield
    asyncio.run(_query(database, "DELETE FROM users WHERE email = :email"))


def test_create_admin_creates_then_promotes(database: str, cleanup: None) -> None:
    created = run_cli(database, "create-admin", "--email", EMAIL.upper(), stdin="long enough pw\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"Created admin user {EMAIL}."
    rows = asyncio.run(_query(database, "SELECT is_admin FROM users WHERE email = :email"))
    assert rows == [(True,)]
    again = run_cli(database, "create-admin", "--email", EMAIL, stdin="long enough pw\n")
    assert again.returncode == 0, again.stderr
    assert "Promoted" in again.stdout


def test_create_admin_with_invalid_email_exits_1_with_one_line(database: str) -> None:
    r = run_cli(database, "create-admin", "--email", "not-an-email", stdin="long enough pw\n")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("The email is not valid")


def test_create_admin_with_weak_password_exits_1_without_echoing_it(database: str) -> None:
    r = run_cli(database, "create-admin", "--email", EMAIL, stdin="short\n")
    assert r.returncode == 1
    assert r.stderr.strip() == "The password must be between 8 and 128 characters long."


def test_create_admin_with_the_database_down_exits_1_with_one_line(database: str) -> None:
    # A port that nothing listens on: the connection is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = make_url(database).set(host="127.0.0.1", port=closed_port)
    r = run_cli(
        unreachable.render_as_string(hide_password=False),
        "create-admin",
        "--email",
        EMAIL,
        stdin="long enough pw\n",
    )
    assert r.returncode == 1
    assert r.stderr.strip().startswith("The database is not answering"), r.stderr
    assert "Traceback" not in r.stderr


async def test_a_promotion_is_seen_at_once_by_the_users_cached_reads_and_sessions(
    committing_client: httpx.AsyncClient, database: str, cleanup: None
) -> None:
    # The user's JSON is cached and their session's marker records "user": both
    # would keep the old role for their TTL unless the CLI drops them.
    client = committing_client
    signup = await client.post("/api/v1/users", json={"email": EMAIL, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).json()["is_admin"] is False
    assert (await client.get("/api/v1/users", headers=headers)).status_code == 403

    promoted = await asyncio.to_thread(
        run_cli, database, "create-admin", "--email", EMAIL, stdin="long enough pw\n"
    )
    assert promoted.returncode == 0, promoted.stderr

    me = await client.get("/api/v1/users/me", headers=headers)
    assert me.json()["is_admin"] is True, me.text
    listed = await client.get("/api/v1/users", headers=headers)
    assert listed.status_code == 200, listed.text


def test_create_admin_refuses_a_deactivated_user_and_changes_nothing(
    database: str, cleanup: None
) -> None:
    created = run_cli(database, "create-admin", "--email", EMAIL, stdin="long enough pw\n")
    assert created.returncode == 0, created.stderr
    deactivate = "UPDATE users SET is_active = false, is_admin = false WHERE email = :email"
    asyncio.run(_query(database, deactivate))
    # Deactivated for a reason the command cannot know (a compromised account?):
    # it never brings one back, let alone as an admin.
    r = run_cli(database, "create-admin", "--email", EMAIL, stdin="long enough pw\n")
    assert r.returncode == 1, r.stdout
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "deactivated" in r.stderr, r.stderr
    rows = asyncio.run(
        _query(database, "SELECT is_active, is_admin FROM users WHERE email = :email")
    )
    assert rows == [(False, False)]
