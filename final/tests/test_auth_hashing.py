"""Password hashing at production cost: off the event loop, bounded, refused beyond the bound."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import PASSWORD, assert_problem, make_settings, open_client

from app.config import Settings
from app.main import create_app
from app.security import PasswordHasher

# The production defaults (PERFORMANCE.md: ~100 ms and ~140 ms of CPU per hash).
PRODUCTION_ARGON2 = {"argon2_time_cost": 3, "argon2_memory_kib": 65_536, "argon2_parallelism": 4}
# Not the generic 503 sentence: this one tells a client that retrying in a second is worth it.
HASHING_BUSY = "Too many password checks are in progress; try again in a second."


def _email() -> str:
    return f"hashing-{uuid.uuid4().hex[:12]}@example.com"


async def _delete_user(database: str, email: str) -> None:
    engine = create_async_engine(database, poolclass=NullPool)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM users WHERE email = :e"), {"e": email})
    await engine.dispose()


async def _login(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})


async def _wait_until(condition: object, what: str) -> None:
    """Poll a condition on the loop (not a timing assertion: it only bounds a hang)."""
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"Gave up waiting for {what}.")


@asynccontextmanager
async def _client_with_user(
    database: str, **settings: object
) -> AsyncIterator[tuple[httpx.AsyncClient, PasswordHasher, str]]:
    """A client of an app on these settings (real pool), its hasher, a signed-up user's email."""
    app_settings = make_settings(**settings)
    app = create_app(app_settings)
    # The test holds the app's hasher: every request of the client uses this one.
    hasher = PasswordHasher(app_settings)
    email = _email()
    try:
        async with aclosing(open_client(app, {"password_hasher": hasher})) as clients:
            async for client in clients:
                signup = await client.post(
                    "/api/v1/users", json={"email": email, "password": PASSWORD}
                )
                assert signup.status_code == 201, signup.text
                yield client, hasher, email
    finally:
        await _delete_user(database, email)


@asynccontextmanager
async def _the_only_hashing_slot_taken(hasher: PasswordHasher) -> AsyncIterator[None]:
    """Occupy the hashing slot (hash_concurrency=1), so that the next logins must queue."""
    holder = object()
    await hasher.limiter.acquire_on_behalf_of(holder)
    try:
        yield
    finally:
        hasher.limiter.release_on_behalf_of(holder)


# Each test asks for `redis` only to start on a flushed Redis database: the login
# limit counts per client address, and every test's client is 127.0.0.1.


async def test_twenty_concurrent_logins_at_production_cost_leave_the_loop_serving(
    database: str, redis: Redis
) -> None:
    # Hashing at production cost, on the app's real pool (writes are committed).
    async with _client_with_user(
        database, **PRODUCTION_ARGON2, hash_queue_limit=32, login_rate_limit="1000/minute"
    ) as (client, hasher, email):
        logins = [asyncio.create_task(_login(client, email)) for _ in range(20)]
        await _wait_until(
            lambda: hasher.limiter.statistics().borrowed_tokens > 0, "hashing to start"
        )
        live = await client.get("/health/live")
        # Answered while hashes were still running: the loop was never theirs.
        still_hashing = hasher.limiter.statistics().borrowed_tokens > 0
        assert live.status_code == 200, live.text
        assert still_hashing
        statuses = [r.status_code for r in await asyncio.gather(*logins)]
        assert statuses == [200] * 20, statuses


async def test_logins_beyond_the_queue_bound_get_503_with_retry_after(
    database: str, redis: Redis
) -> None:
    async with _client_with_user(
        database, hash_concurrency=1, hash_queue_limit=2, login_rate_limit="1000/minute"
    ) as (client, hasher, email):
        async with _the_only_hashing_slot_taken(hasher):
            queued = [asyncio.create_task(_login(client, email)) for _ in range(2)]
            await _wait_until(
                lambda: hasher.limiter.statistics().tasks_waiting == 2, "two queued logins"
            )
            refused = await _login(client, email)
        body = assert_problem(refused, 503)
        assert refused.headers["retry-after"] == "1"
        assert body["detail"] == HASHING_BUSY
        # The queued ones were served once the slot freed up.
        statuses = [r.status_code for r in await asyncio.gather(*queued)]
        assert statuses == [200, 200], statuses


async def test_a_login_waiting_to_hash_holds_no_database_connection(
    database: str, redis: Redis
) -> None:
    # One pooled connection: if the queued login held it, readiness could not check PostgreSQL.
    async with _client_with_user(
        database,
        hash_concurrency=1,
        db_pool_size=1,
        db_pool_timeout_seconds=2,
        login_rate_limit="1000/minute",
    ) as (client, hasher, email):
        async with _the_only_hashing_slot_taken(hasher):
            login = asyncio.create_task(_login(client, email))
            await _wait_until(
                lambda: hasher.limiter.statistics().tasks_waiting == 1, "the login to queue"
            )
            ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert (await login).status_code == 200


async def test_a_login_refused_for_hashing_capacity_does_not_use_up_the_login_limit(
    database: str, redis: Redis
) -> None:
    # No queue: with the one slot taken, every login is refused at once.
    async with _client_with_user(
        database, hash_concurrency=1, hash_queue_limit=0, login_rate_limit="1/minute"
    ) as (client, hasher, email):
        async with _the_only_hashing_slot_taken(hasher):
            refused = [(await _login(client, email)).status_code for _ in range(3)]
        # 503, never 429: they were turned away before the login limit counted them.
        assert refused == [503, 503, 503]
        assert (await _login(client, email)).status_code == 200


async def test_with_the_default_bounds_a_login_is_refused_not_queued_while_every_core_hashes(
    database: str, redis: Redis
) -> None:
    # The production defaults: one hash per core at a time, and none waiting.
    fields = Settings.model_fields
    concurrency = fields["hash_concurrency"].get_default(call_default_factory=True)
    queue_limit = fields["hash_queue_limit"].get_default()
    async with _client_with_user(
        database,
        hash_concurrency=concurrency,
        hash_queue_limit=queue_limit,
        login_rate_limit="1000/minute",
    ) as (client, hasher, email):
        holders = [object() for _ in range(concurrency)]
        for holder in holders:
            await hasher.limiter.acquire_on_behalf_of(holder)
        try:
            login = asyncio.create_task(_login(client, email))
            await _wait_until(
                lambda: login.done() or hasher.limiter.statistics().tasks_waiting > 0,
                "the login to be refused or queued",
            )
            queued = hasher.limiter.statistics().tasks_waiting
            live = await client.get("/health/live")
        finally:
            for holder in holders:
                hasher.limiter.release_on_behalf_of(holder)
        refused = await login
        assert queued == 0, "the login waited for a hashing slot instead of being refused"
        body = assert_problem(refused, 503)
        assert refused.headers["retry-after"] == "1"
        assert body["detail"] == HASHING_BUSY
        assert live.status_code == 200, live.text
        assert (await _login(client, email)).status_code == 200
