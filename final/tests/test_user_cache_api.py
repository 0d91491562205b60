"""User reads through the cache: hits, misses, invalidation after every write, races, stampedes."""

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from tests.conftest import make_settings, open_client, with_lifespan_state
from tests.redis_fixtures import redis_paused

from app.cache import UserCache
from app.main import create_app
from app.repository import UserRecord, UserRepository
from app.user_reads import public_user_json

USERS = "/api/v1/users"
PASSWORD = "correct horse battery"


async def act_as(client: httpx.AsyncClient, user: UserRecord) -> None:
    """Make the client's next requests as this user, logged in through the login route.

    The real token check, not a stand-in: the session, its marker and the role
    are all exercised on the way to the cache.
    """
    r = await client.post("/api/v1/auth/token", data={"username": user.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


async def sign_up(client: httpx.AsyncClient, email: str, **extra: Any) -> uuid.UUID:
    r = await client.post(USERS, json={"email": email, "password": PASSWORD, **extra})
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


async def load(session: AsyncSession, user_id: uuid.UUID) -> UserRecord:
    user = await UserRepository(session).get(user_id)
    assert user is not None
    return user


async def make_admin(session: AsyncSession, client: httpx.AsyncClient) -> UserRecord:
    admin_id = await sign_up(client, "root@example.com")
    admin = await UserRepository(session).update(admin_id, {"is_admin": True})
    assert admin is not None
    await session.commit()
    return admin


@pytest.fixture
async def ada(client: httpx.AsyncClient, session: AsyncSession) -> UserRecord:
    """A signed-up user, not cached yet."""
    return await load(session, await sign_up(client, "ada@example.com", full_name="Ada"))


@pytest.fixture
async def admin(client: httpx.AsyncClient, session: AsyncSession) -> UserRecord:
    """An admin, who the requests are made as."""
    user = await make_admin(session, client)
    await act_as(client, user)
    return user


def user_key(user_id: uuid.UUID) -> str:
    return f"v1:user:{user_id}"


def metric(text: str, series: str) -> float:
    """The value of one series in Prometheus text (0 when absent)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# --- hits and misses -----------------------------------------------------------------


async def test_a_read_misses_then_the_next_one_is_answered_from_redis(
    client: httpx.AsyncClient, redis: Redis, admin: UserRecord, ada: UserRecord
) -> None:
    assert await redis.exists(user_key(ada.id)) == 0

    first = await client.get(f"{USERS}/{ada.id}")
    assert first.status_code == 200, first.text
    assert await redis.get(user_key(ada.id)) == first.content
    second = await client.get(f"{USERS}/{ada.id}")
    assert second.status_code == 200, second.text

    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, "cache_hits_total") == 1
    assert metric(metrics, "cache_misses_total") == 1


async def test_a_cached_body_is_identical_to_the_uncached_one(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    admin: UserRecord,
    ada: UserRecord,
) -> None:
    uncached_app = create_app(make_settings(cache_enabled=False))
    await client.get(f"{USERS}/{ada.id}")  # fills the cache
    cached = await client.get(f"{USERS}/{ada.id}")

    async for uncached_client in open_client(uncached_app, {"sessionmaker": sessionmaker}):
        await act_as(uncached_client, admin)
        uncached = await uncached_client.get(f"{USERS}/{ada.id}")

    assert cached.status_code == uncached.status_code == 200, (cached.text, uncached.text)
    assert cached.content == uncached.content
    assert cached.headers["content-type"] == uncached.headers["content-type"]
    assert cached.json() == {
        "id": str(ada.id),
        "email": "ada@example.com",
        "full_name": "Ada",
        "is_active": True,
        "is_admin": False,
        "created_at": ada.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": ada.updated_at.isoformat().replace("+00:00", "Z"),
    }
    # FastAPI's own serialisation of the same user (the PATCH answer) agrees too.
    patched = await client.patch(f"{USERS}/{ada.id}", json={})
    assert patched.content == cached.content


async def test_with_the_cache_disabled_reads_never_touch_redis(
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    client: httpx.AsyncClient,
    redis: Redis,
    ada: UserRecord,
) -> None:
    uncached_app = create_app(make_settings(cache_enabled=False))
    admin = await make_admin(session, client)

    async for uncached_client in open_client(uncached_app, {"sessionmaker": sessionmaker}):
        await act_as(uncached_client, admin)
        for _ in range(2):
            r = await uncached_client.get(f"{USERS}/{ada.id}")
            assert r.status_code == 200, r.text

    assert await redis.keys("v1:user:*") == []


async def test_cached_users_get_jittered_ttls(
    client: httpx.AsyncClient, redis: Redis, admin: UserRecord
) -> None:
    user_ids = [await sign_up(client, f"user{n}@example.com") for n in range(12)]
    for user_id in user_ids:
        assert (await client.get(f"{USERS}/{user_id}")).status_code == 200

    ttl_ms = make_settings().cache_ttl_seconds * 1000
    ttls = [await redis.pttl(user_key(user_id)) for user_id in user_ids]
    # Within +-10% of the configured TTL, less the time the test took (a minute
    # at most, however busy the machine)...
    assert all(0.9 * ttl_ms - 60_000 <= ttl <= 1.1 * ttl_ms for ttl in ttls), ttls
    # ...and spread over it: without jitter they would all sit within the test's
    # own duration below the TTL. Twelve uniform draws all within a quarter of
    # the jitter's range: about one run in a few hundred thousand.
    assert max(ttls) - min(ttls) >= 0.05 * ttl_ms, ttls


async def test_an_unknown_user_is_404_and_not_cached(
    client: httpx.AsyncClient, redis: Redis, admin: UserRecord
) -> None:
    unknown = uuid.uuid4()

    r = await client.get(f"{USERS}/{unknown}")

    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await redis.exists(user_key(unknown)) == 0


# --- invalidation after every kind of write ------------------------------------------


async def cache_user(client: httpx.AsyncClient, redis: Redis, user_id: uuid.UUID) -> None:
    for _ in range(2):
        r = await client.get(f"{USERS}/{user_id}")
        assert r.status_code == 200, r.text
    assert await redis.exists(user_key(user_id)) == 1


async def test_patch_me_invalidates_the_cached_user(
    client: httpx.AsyncClient, redis: Redis, ada: UserRecord
) -> None:
    await act_as(client, ada)
    await cache_user(client, redis, ada.id)

    r = await client.patch(f"{USERS}/me", json={"full_name": "Countess Lovelace"})
    assert r.status_code == 200, r.text
    assert await redis.exists(user_key(ada.id)) == 0

    after = await client.get(f"{USERS}/{ada.id}")
    assert after.json()["full_name"] == "Countess Lovelace"
    assert after.content == r.content


async def test_a_password_change_invalidates_the_cached_user(
    client: httpx.AsyncClient, redis: Redis, ada: UserRecord
) -> None:
    await act_as(client, ada)
    await cache_user(client, redis, ada.id)

    r = await client.patch(
        f"{USERS}/me", json={"password": "a new long password", "current_password": PASSWORD}
    )
    assert r.status_code == 200, r.text

    # Nothing public changed within this test's one transaction (updated_at is
    # the transaction's time), so look at the cache itself: the entry is gone.
    assert await redis.exists(user_key(ada.id)) == 0
    assert (await client.get(f"{USERS}/{ada.id}")).content == r.content


async def test_an_admin_update_invalidates_the_cached_user(
    client: httpx.AsyncClient, redis: Redis, admin: UserRecord, ada: UserRecord
) -> None:
    await cache_user(client, redis, ada.id)

    r = await client.patch(f"{USERS}/{ada.id}", json={"is_active": False, "full_name": "A. L."})
    assert r.status_code == 200, r.text
    assert await redis.exists(user_key(ada.id)) == 0

    after = (await client.get(f"{USERS}/{ada.id}")).json()
    assert after["is_active"] is False
    assert after["full_name"] == "A. L."


async def test_a_delete_invalidates_the_cached_user(
    client: httpx.AsyncClient, redis: Redis, admin: UserRecord, ada: UserRecord
) -> None:
    await cache_user(client, redis, ada.id)

    r = await client.delete(f"{USERS}/{ada.id}")
    assert r.status_code == 204, r.text

    assert (await client.get(f"{USERS}/{ada.id}")).status_code == 404
    assert await redis.exists(user_key(ada.id)) == 0


async def test_a_login_that_rehashes_the_password_invalidates_the_cached_user(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    admin: UserRecord,
    ada: UserRecord,
) -> None:
    await cache_user(client, redis, ada.id)
    # A new Argon2 cost: the login upgrades Ada's hash, which moves updated_at.
    costlier = create_app(make_settings(argon2_time_cost=2))

    async for other in open_client(costlier, {"sessionmaker": sessionmaker}):
        r = await other.post(
            "/api/v1/auth/token", data={"username": ada.email, "password": PASSWORD}
        )

    assert r.status_code == 200, r.text
    assert await redis.exists(user_key(ada.id)) == 0


async def test_a_read_racing_a_write_cannot_leave_the_old_user_cached(
    app: FastAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    redis: Redis,
) -> None:
    async with app.router.lifespan_context(app) as state:
        cache: UserCache = state["user_cache"]
        overridden = {**state, "sessionmaker": sessionmaker}
        transport = httpx.ASGITransport(app=with_lifespan_state(app, overridden))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await act_as(client, await make_admin(session, client))
            user = await load(session, await sign_up(client, "ada@example.com", full_name="Old"))
            old_json = public_user_json(user)
            started, release = asyncio.Event(), asyncio.Event()

            async def slow_loader() -> bytes:
                # A reader that read the row before the write committed, and is slow.
                started.set()
                await release.wait()
                return old_json

            reader = asyncio.create_task(cache.get_or_load(str(user.id), slow_loader))
            await started.wait()
            # The write commits and invalidates while the reader holds the old row.
            r = await client.patch(f"{USERS}/{user.id}", json={"full_name": "New"})
            assert r.status_code == 200, r.text
            release.set()

            assert await reader == old_json  # that one response was already in flight
            assert await redis.exists(user_key(user.id)) == 0  # but it was not cached
            after = await client.get(f"{USERS}/{user.id}")
            assert after.json()["full_name"] == "New"
            assert await redis.get(user_key(user.id)) == after.content


# --- single flight -------------------------------------------------------------------


@pytest.fixture
def user_queries(connection: AsyncConnection) -> Iterator[Callable[[uuid.UUID], int]]:
    """Count the SQL statements sent for one user's id (on the test's connection)."""
    statements: list[tuple[str, str]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, repr(parameters)))

    event.listen(connection.engine.sync_engine, "before_cursor_execute", record)

    def count(user_id: uuid.UUID) -> int:
        return sum(
            1
            for statement, params in statements
            if "FROM users" in statement and str(user_id) in params
        )

    yield count
    event.remove(connection.engine.sync_engine, "before_cursor_execute", record)


async def test_fifty_concurrent_reads_of_a_cold_user_query_the_database_once(
    client: httpx.AsyncClient,
    admin: UserRecord,
    ada: UserRecord,
    user_queries: Callable[[uuid.UUID], int],
) -> None:
    assert user_queries(ada.id) == 0
    # One request first writes the admin's session marker: the fifty token checks
    # then need no query (fifty at once on the test's one connection could not run).
    assert (await client.get(f"{USERS}/me")).status_code == 200

    responses = await asyncio.gather(*(client.get(f"{USERS}/{ada.id}") for _ in range(50)))

    assert [r.status_code for r in responses] == [200] * 50, responses[0].text
    assert len({r.content for r in responses}) == 1
    assert user_queries(ada.id) == 1


# --- Redis gone ----------------------------------------------------------------------


@pytest.fixture
def app_without_redis(closed_port_url: str, database: str) -> FastAPI:
    """An app whose Redis URL points at a port nothing listens on."""
    return create_app(make_settings(redis_url=closed_port_url, redis_socket_timeout_seconds=0.3))


async def test_without_redis_reads_and_writes_still_work(
    app_without_redis: FastAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
) -> None:
    async for client in open_client(app_without_redis, {"sessionmaker": sessionmaker}):
        await act_as(client, await make_admin(session, client))
        user_id = await sign_up(client, "ada@example.com")

        for _ in range(2):
            r = await client.get(f"{USERS}/{user_id}")
            assert r.status_code == 200, r.text
        r = await client.patch(f"{USERS}/{user_id}", json={"full_name": "Ada"})
        assert r.status_code == 200, r.text
        assert (await client.get(f"{USERS}/{user_id}")).json()["full_name"] == "Ada"

        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "redis": "unavailable"},
        }
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "cache_hits_total") == 0
        assert metric(metrics, "cache_errors_total") >= 3
        assert metric(metrics, 'redis_errors_total{component="cache"}') >= 3
        assert metric(metrics, 'redis_errors_total{component="health"}') == 1


async def test_while_redis_is_paused_reads_come_from_postgresql_and_the_cache_refills_after(
    database: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    redis: Redis,
) -> None:
    app = create_app(make_settings(redis_socket_timeout_seconds=0.2))
    async for client in open_client(app, {"sessionmaker": sessionmaker}):
        await act_as(client, await make_admin(session, client))
        user_id = await sign_up(client, "ada@example.com")

        async with redis_paused(2500):
            ready = await client.get("/health/ready")
            during = await client.get(f"{USERS}/{user_id}")
            patched = await client.patch(f"{USERS}/{user_id}", json={"full_name": "Ada"})

        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "redis": "unavailable"}
        assert during.status_code == 200, during.text
        assert patched.status_code == 200, patched.text
        assert await redis.exists(user_key(user_id)) == 0

        # Redis is back: the same process caches again, no restart needed.
        first = await client.get(f"{USERS}/{user_id}")
        assert first.json()["full_name"] == "Ada"
        assert await redis.get(user_key(user_id)) == first.content
        assert (await client.get("/health/ready")).json()["status"] == "ok"
