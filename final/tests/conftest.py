"""Fixtures: settings -> database -> app -> client, each test inside a rolled-back transaction."""

import asyncio
import os
import time
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
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.blocking import CaughtBlockingCalls, blocking_calls_fail
from tests.lock_holder import delete_users

from app.config import Settings, load_settings
from app.main import create_app
from app.repository import SessionRepository, UserRecord, UserRepository
from app.schemas import Token
from app.security import (
    PasswordHasher,
    RefreshToken,
    create_access_token,
    hash_refresh_secret,
    new_refresh_secret,
)

# Redis fixtures live in their own module; registered here for every test.
pytest_plugins = ["tests.redis_fixtures"]

# Property tests run the same examples on every run and machine (derandomize), a
# bounded number of them, with no per-example deadline a busy machine could
# miss, and write no example database into the project.
hypothesis_settings.register_profile(
    "workshop", derandomize=True, max_examples=200, deadline=None, database=None
)
hypothesis_settings.load_profile("workshop")

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/workshop_final_test"


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
    """Settings for tests: no .env file, the test environment, the test database."""
    # Imported here, not at the top: pytest must load it as a plugin (pytest_plugins,
    # below) before anything imports it, or it cannot rewrite its asserts.
    from tests.redis_fixtures import redis_url

    values: dict[str, Any] = {
        "database_url": database_url(),
        "redis_url": redis_url(),
        # A busy test machine can be slower than production's 0.25 s (0.5 s to
        # connect), which would turn exact counts into "degraded" ones; fault
        # tests set short timeouts.
        "redis_socket_timeout_seconds": 2.0,
        "redis_connect_timeout_seconds": 2.0,
        "environment": "test",
    }
    # Authentication: Argon2id at its cheapest (1 MiB, one pass, one lane), so
    # the many logins of the suite stay fast. Production's cost is exercised by
    # test_auth_hashing.py, which builds its app with the default parameters.
    # Cheap hashes can queue: the tests that race twenty sign-ups want them all served.
    values.update(
        argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, hash_queue_limit=64
    )
    values.update(overrides)
    return load_settings(_env_file=None, **values)


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
        error = type(exc).__name__
    # Failed outside the except: the message alone, not behind the driver's traceback.
    pytest.fail(
        f"PostgreSQL is not answering at {parsed.host}:{parsed.port or 5432} "
        f"({error}): start it (for example `pg_ctl start`, or a "
        "postgres:17 container on port 5432), set DATABASE_URL to a reachable "
        "server, or run the tests through `./workshop -s final`.",
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


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session inside the test's transaction, for repository tests."""
    async with sessionmaker() as session:
        yield session


# --- the app and its client ---------------------------------------------------------


@pytest.fixture
def app(settings: Settings, database: str, redis: Redis) -> FastAPI:
    """A fresh app built with the test settings, on a flushed Redis database."""
    # Requesting `redis` flushes the test database: no rate-limit count or
    # cached user leaks from one test into the next.
    return create_app(settings)


def with_lifespan_state(app: ASGIApp, state: dict[str, Any]) -> ASGIApp:
    """Hand each request a copy of the lifespan state, as uvicorn does."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    return asgi


class ServerClock:
    """Wrap an app and note, as its server would see them, when a request came and was answered.

    Times are time.perf_counter() readings, the clock the middleware measures with:
    the app's own timings of a request must fit between them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrived = self.answered = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrived = time.perf_counter()

        async def send_noting_the_answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answered = time.perf_counter()
            await send(message)

        await self.app(scope, receive, send_noting_the_answer)


async def open_client(
    app: FastAPI, overrides: dict[str, Any] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan, apply state overrides, and yield a client over ASGI."""
    async with app.router.lifespan_context(app) as state:
        state = {**state, **(overrides or {})}
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


@pytest.fixture
async def committing_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the app's real pool: its writes are committed; the test cleans up."""
    async for client in open_client(app):
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem response with our headers; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 401:
        # RFC 6750: the bare challenge when no token came, error="invalid_token" for a bad one.
        assert response.headers["www-authenticate"] in ("Bearer", 'Bearer error="invalid_token"')
    return body


# --- users and their tokens ---------------------------------------------------------

PASSWORD = "correct horse battery"
UserFactory = Callable[..., Awaitable[UserRecord]]
TokenFactory = Callable[[UserRecord], Awaitable[Token]]
HeadersFactory = Callable[[UserRecord], Awaitable[dict[str, str]]]


@pytest.fixture
def user(session: AsyncSession, settings: Settings) -> UserFactory:
    """Create users in the test transaction: `await user(is_admin=True)`."""
    hasher = PasswordHasher(settings)
    count = 0

    async def make(
        email: str | None = None,
        *,
        password: str = PASSWORD,
        is_admin: bool = False,
        is_active: bool = True,
    ) -> UserRecord:
        nonlocal count
        count += 1
        users = UserRepository(session)
        created = await users.create(
            email=email or f"user{count}@example.com",
            password_hash=await hasher.hash(password),
            is_admin=is_admin,
        )
        if not is_active:
            created = await users.update(created.id, {"is_active": False}) or created
        await session.commit()
        return created

    return make


@pytest.fixture
def token_pair(session: AsyncSession, settings: Settings) -> TokenFactory:
    """Start a session for a user as a login would (without the login route): its token pair."""

    async def make(owner: UserRecord) -> Token:
        secret = new_refresh_secret()
        session_id = await SessionRepository(session).create(
            user_id=owner.id,
            refresh_token_hash=hash_refresh_secret(secret),
            ttl_seconds=settings.refresh_token_ttl_seconds,
            user_agent="pytest",
            ip="127.0.0.1",
        )
        await session.commit()
        return Token(
            access_token=create_access_token(settings, owner.id, session_id),
            refresh_token=str(RefreshToken(session_id, secret)),
            expires_in=settings.access_token_ttl_seconds,
        )

    return make


@pytest.fixture
def auth_headers(token_pair: TokenFactory) -> HeadersFactory:
    """The Authorization header of a fresh session of a user: `await auth_headers(admin)`."""

    async def make(owner: UserRecord) -> dict[str, str]:
        return bearer((await token_pair(owner)).access_token)

    return make


def bearer(access_token: str) -> dict[str, str]:
    """The Authorization header carrying an access token."""
    return {"Authorization": f"Bearer {access_token}"}


@pytest.fixture
async def committed_email(database: str) -> AsyncIterator[str]:
    """A fresh email for a user signed up through the committing pool; deleted after the test."""
    address = f"committed-{uuid.uuid4().hex[:12]}@example.com"
    yield address
    await delete_users(database, address)


async def sign_up_and_log_in(client: httpx.AsyncClient, email: str) -> tuple[str, dict[str, str]]:
    """Sign up and log in through the API; return the user's id and Authorization header."""
    signup = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    login = await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return signup.json()["id"], bearer(login.json()["access_token"])
