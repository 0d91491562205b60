"""Fixtures: settings -> database -> app -> client, each test inside a rolled-back transaction.

The chain, each link built from the one above it:

    settings            make_settings(): the test database and Redis, cheap hashes (once per run)
       |
    database            dropped, created and migrated to head with Alembic (once per run)
       |
    connection          one connection, its outer transaction rolled back after each test
       |
    sessionmaker        sessions on that connection: a commit only releases a savepoint
       |
    app                 create_app(settings); requesting it flushes the test Redis database
       |
    client              the app's lifespan run, an httpx client over ASGI, the
       |                requests on the test's sessionmaker (through the lifespan state)
    user, tokens,       sign-ups and logins through the API itself
    auth_headers

`redis` flushes the test Redis database before and after each test, so no
rate-limit count or cached user leaks from one test into the next.

What cannot run inside one rolled-back transaction: anything that needs two
connections to PostgreSQL at once. Concurrent requests that must each hold a
lock (racing sign-ups, updates and password changes), a row lock held by the
test while a request waits for it, and a request's own backend cut by
pg_terminate_backend all need the app's real pool and rows another connection
can see. Those tests use `committing_client` (or `open_client(app)` on an app of
their own): its writes are committed for real and deleted after the test.
"""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.blocking import CaughtBlockingCalls, blocking_calls_fail
from tests.lock_holder import delete_users
from tests.served import (
    ImageCommand,
    Instance,
    free_port,
    production_environment,
    run_image_command,
)

import app as app_package
from app.config import Settings
from app.main import create_app

# Redis fixtures live in their own module; registered here for every test.
pytest_plugins = ["tests.redis_fixtures"]

# Property tests run the same examples on every run and machine (derandomize), a
# bounded number of them, with no per-example deadline a busy machine could
# miss, and write no example database into the project.
hypothesis_settings.register_profile(
    "workshop", derandomize=True, max_examples=200, deadline=None, database=None
)
hypothesis_settings.load_profile("workshop")

# The project's folder (alembic.ini, migrations/), found from the package under
# test rather than from this file: the tests judge whichever app/ is imported.
PROJECT_DIR = Path(app_package.__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/workshop_08_deployment"


# --- blocking calls on the event loop ----------------------------------------------


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[CaughtBlockingCalls]:
    """Fail any test in which code running on the event loop makes a blocking call.

    blockbuster patches the calls that block (time.sleep, socket and file I/O,
    os calls, lock waits) to raise BlockingError when they run inside a running
    event loop: a blocking call is caught by what it is, however fast or busy
    the machine is, not by how long it took. tests/blocking.py lists the few
    calls allowed, each with its reason.
    """
    with blocking_calls_fail() as caught:
        yield caught


# --- settings and database ----------------------------------------------------------


def database_url() -> str:
    """The test database: DATABASE_URL (nox sets it) or the local default."""
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: no .env file, the test environment, the test database and Redis."""
    # Imported here, not at the top: pytest must load it as a plugin (pytest_plugins,
    # above) before anything imports it, or it cannot rewrite its asserts.
    from tests.redis_fixtures import redis_url

    values: dict[str, Any] = {
        "database_url": database_url(),
        "redis_url": redis_url(),
        # A busy test machine can be slower than production's 0.25 s (0.5 s to
        # connect), which would turn exact counts into fail-open ones; fault
        # tests set short timeouts.
        "redis_socket_timeout_seconds": 2.0,
        "redis_connect_timeout_seconds": 2.0,
        "environment": "test",
        "trusted_hosts": ["test", "localhost"],
        "cors_origins": ["https://app.example.com"],
        # Argon2id at its cheapest (1 MiB, one pass, one lane): the suite signs
        # up hundreds of users, and the cost is not what it tests.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        # Cheap hashes can queue: the tests that race twenty sign-ups want them all
        # served. The login limit is far away: its own tests set a tight one.
        "hash_queue_limit": 64,
        "login_rate_limit": "1000/minute",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings every test app is built with."""
    return make_settings()


async def _connect_to_maintenance_database(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    try:
        return await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database="postgres",
            timeout=5,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not answering at {parsed.host}:{parsed.port or 5432} "
            f"({type(exc).__name__}): start it, set DATABASE_URL to a reachable "
            'server, or run the tests through `./workshop -s "step(08_deployment)"`.',
            pytrace=False,
        )


async def recreate_database(url: str) -> None:
    """Drop and create the database named in url, for a clean slate."""
    name = make_url(url).database
    assert name, "DATABASE_URL must name a database."
    connection = await _connect_to_maintenance_database(url)
    try:
        # WITH (FORCE): a previous run's lingering connections must not block the drop.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def alembic_config(url: str) -> Config:
    """Alembic's configuration for this project, pointed at url."""
    config = Config(str(PROJECT_DIR / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


@pytest.fixture(scope="session")
def database(settings: Settings) -> str:
    """Recreate and migrate the test database once per run."""
    # Synchronous on purpose: Alembic's env.py runs its own asyncio loop.
    asyncio.run(recreate_database(settings.database_url))
    command.upgrade(alembic_config(settings.database_url), "head")
    return settings.database_url


@pytest.fixture
async def connection(database: str) -> AsyncIterator[AsyncConnection]:
    """One connection whose outer transaction is rolled back after the test."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            yield conn
            await transaction.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to the test connection: their commits only release savepoints."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


# --- the app and its client ---------------------------------------------------------


@pytest.fixture
def app(settings: Settings, database: str, redis: Redis) -> FastAPI:
    """The application under test, built from the test settings, on the migrated database."""
    # Requesting `redis` flushes the test database: no rate-limit count or
    # cached user leaks from one test into the next.
    return create_app(settings)


def with_lifespan_state(app: ASGIApp, state: dict[str, Any]) -> ASGIApp:
    """Hand each request a copy of the lifespan state, as uvicorn does."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    return asgi


async def open_client(
    app: FastAPI, overrides: dict[str, Any] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan, apply state overrides, and yield a client over ASGI."""
    async with app.router.lifespan_context(app) as state:
        state = {**(state or {}), **(overrides or {})}
        transport = httpx.ASGITransport(app=with_lifespan_state(app, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def client(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests use the test transaction (through the lifespan state)."""
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        yield client


async def delete_all_users(url: str) -> None:
    """Delete every user: the clean-up after a test that committed for real."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM users"))
    finally:
        await engine.dispose()


@pytest.fixture
async def committed_email(database: str) -> AsyncIterator[str]:
    """A fresh email for a user signed up through the real pool; the user is deleted after."""
    address = f"committed-{uuid.uuid4().hex[:12]}@example.com"
    yield address
    await delete_users(database, address)


@pytest.fixture
async def committing_client(app: FastAPI, database: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app's real pool: its writes are committed, and deleted after the test."""
    try:
        async for client in open_client(app):
            yield client
    finally:
        await delete_all_users(database)


# --- errors and log lines, as a client and an operator see them ---------------------

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem+json answer of this status; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_MEMBERS, body
    assert body["type"] == "about:blank", body
    assert body["status"] == status, body
    assert isinstance(body["title"], str), body
    assert body["title"], body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body
    assert body["instance"] == response.request.url.path, body
    assert body["request_id"] == response.headers["x-request-id"], body
    if status == 401:
        # RFC 6750: the bare challenge when no token came, error="invalid_token" for a bad one.
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    return body


def json_log_lines(captured: str) -> list[dict[str, Any]]:
    """Parse captured stderr as the service writes it: one JSON object per line."""
    lines = []
    for line in captured.splitlines():
        if line.strip():
            # Every line must parse: a collector drops (or chokes on) one that does not.
            parsed = json.loads(line)
            assert isinstance(parsed, dict), line
            lines.append(parsed)
    return lines


async def served_logs(
    app: FastAPI,
    capfd: pytest.CaptureFixture[str],
    requests: Callable[[httpx.AsyncClient], Awaitable[None]],
    state: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run `requests` against the app, shut it down; return the JSON lines it logged.

    Build the app in the test itself, while the capture is on, so that its log
    output (stderr) lands in it: shutting the lifespan down writes out every line.
    """
    async for client in open_client(app, state):
        await requests(client)
    lines = json_log_lines((await read_captured(capfd)).err)
    # The test's own client logs each request it sends (logger "httpx"): not the service's lines.
    return [line for line in lines if line.get("logger") != "httpx"]


async def read_captured(capfd: pytest.CaptureFixture[str]) -> Any:
    """What was written to stdout and stderr so far, read off the event loop (it is file I/O)."""
    return await asyncio.to_thread(capfd.readouterr)


# --- watching the database from outside the app -------------------------------------


@pytest.fixture
async def observer(database: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own, outside the app's pool and the test's transaction."""
    engine = create_async_engine(database, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def wait_for_lock_waits(observer: AsyncConnection, count: int) -> None:
    """Wait, within a bound, until `count` of the app's statements wait for a lock."""
    waiting = 0
    for _ in range(600):
        waiting = await observer.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND application_name = 'workshop-final'"
            )
        )
        await observer.rollback()  # pg_stat_activity is read once per transaction
        if waiting == count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{waiting} of the app's statements wait for a lock, not {count}.")


# --- the service as its image runs it ---------------------------------------------


@pytest.fixture
def image_command() -> ImageCommand:
    """The Dockerfile's CMD and HEALTHCHECK, pointed at a free local port."""
    return ImageCommand.from_dockerfile(free_port())


@pytest.fixture
async def served(
    image_command: ImageCommand, database: str, redis: Redis, tmp_path: Path
) -> AsyncIterator[Instance]:
    """The image's command running in production mode on the test database, until the test ends.

    Its writes are committed for real, and deleted after the test.
    """
    from tests.redis_fixtures import redis_url

    # A statement waiting on a test's lock must outlast the production 5 s timeout.
    env = production_environment(database, redis_url(), DB_STATEMENT_TIMEOUT_MS="120000")
    try:
        # The temporary directory as the working directory: no developer's .env is read.
        async with run_image_command(image_command, env, tmp_path) as instance:
            await instance.wait_until_live()
            yield instance
    finally:
        await delete_all_users(database)


# --- users and their tokens, through the API ----------------------------------------

PASSWORD = "correct horse battery"
UserFactory = Callable[..., Awaitable[dict[str, Any]]]
LoginFactory = Callable[..., Awaitable[dict[str, Any]]]
HeadersFactory = Callable[[dict[str, Any]], Awaitable[dict[str, str]]]


def bearer(access_token: str) -> dict[str, str]:
    """The Authorization header carrying an access token."""
    return {"Authorization": f"Bearer {access_token}"}


async def sign_up(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> dict[str, Any]:
    """Create a user through the sign-up route; return its public JSON."""
    response = await client.post("/api/v1/users", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Log in through the token route (the OAuth2 password form); return the token pair."""
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_up_and_log_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> tuple[str, dict[str, str]]:
    """Sign up and log in through the API; return the user's id and Authorization header."""
    created = await sign_up(client, email, password)
    return created["id"], bearer((await log_in(client, email, password))["access_token"])


async def promote(connection: AsyncConnection, user_id: str) -> None:
    """Make a user an admin, as `python -m app create-admin` would, in the test's transaction."""
    await connection.execute(
        text("UPDATE users SET is_admin = true WHERE id = :id"), {"id": user_id}
    )


@pytest.fixture
def user(client: httpx.AsyncClient, connection: AsyncConnection) -> UserFactory:
    """Sign users up through the API: `await user()`, `await user(is_admin=True)`.

    The flags are set in SQL, in the test's transaction: the API lets only an
    admin set them, and the first admin comes from `python -m app create-admin`.
    """
    count = 0

    async def make(
        email: str | None = None, *, is_admin: bool = False, is_active: bool = True
    ) -> dict[str, Any]:
        nonlocal count
        count += 1
        created = await sign_up(client, email or f"user{count}@example.com")
        if is_admin:
            await promote(connection, created["id"])
            created["is_admin"] = True
        if not is_active:
            await connection.execute(
                text("UPDATE users SET is_active = false WHERE id = :id"), {"id": created["id"]}
            )
            created["is_active"] = False
        return created

    return make


@pytest.fixture
def tokens(client: httpx.AsyncClient) -> LoginFactory:
    """Log a user in through the API: `await tokens(user)` is a fresh session's token pair."""

    async def make(owner: dict[str, Any], password: str = PASSWORD) -> dict[str, Any]:
        return await log_in(client, owner["email"], password)

    return make


@pytest.fixture
def auth_headers(tokens: LoginFactory) -> HeadersFactory:
    """The Authorization header of a fresh session of a user: `await auth_headers(admin)`."""

    async def make(owner: dict[str, Any]) -> dict[str, str]:
        return bearer((await tokens(owner))["access_token"])

    return make
